"""What a RUN argument is, and its json files read on first use.

A RUN is a training output directory of ``ctapipe-train-gammalearn`` (``report.json``),
a benchmark report directory of ``ctapipe-gammalearn-benchmark`` (``metrics.json``), a
folder holding one of each below it (``train/`` and ``benchmark/``, or the quickstart's
``models/gammaphysnet/`` and ``report_point/``), or DL2 files (several joined by commas
make one run: gammas and protons). Nothing is read when a run is found: a page of 50
runs opens each json file once, when it is drawn.
"""

import glob
import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import tables

__all__ = [
    "BoardInputError",
    "Run",
    "TRAINING_REPORT",
    "BENCHMARK_METRICS",
    "expand_patterns",
    "find_run",
    "find_runs",
    "read_json",
]

log = logging.getLogger(__name__)

#: the training tool's report (training/run.py)
TRAINING_REPORT = "report.json"
#: the benchmark tool's metrics (evaluation/writer.py METRICS_JSON)
BENCHMARK_METRICS = "metrics.json"
#: folders that never hold a run: the training cache, TensorBoard, temporaries of atomic.py
_SKIPPED = ("cache", "tensorboard")
_DL2_SUFFIXES = (".h5", ".hdf5", ".hdf")


class BoardInputError(ValueError):
    """An input the board cannot read: the message names the file and the problem."""


def read_json(path):
    """The parsed json of ``path``; a missing or corrupt file raises `BoardInputError` naming it."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise BoardInputError(f"{path}: cannot be read ({err.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise BoardInputError(f"{path}: corrupt JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None


@dataclass
class Run:
    """One column of the comparison: a training, its benchmark, or both, or DL2 files."""

    name: str
    path: Path
    training_dir: Path | None = None
    benchmark_dir: Path | None = None
    dl2_files: tuple = ()
    #: metrics computed from DL2 files (`board.dl2`), in the layout of ``metrics.json``
    computed: dict | None = field(default=None, repr=False)
    #: θ² images computed from DL2 files: ``{file name: PNG bytes}``
    computed_theta2: dict = field(default_factory=dict, repr=False)

    @property
    def kind(self):
        if self.dl2_files:
            return "DL2"
        parts = [what for what, where in (("training", self.training_dir), ("benchmark", self.benchmark_dir)) if where]
        return " + ".join(parts)

    @cached_property
    def report(self):
        """The training's ``report.json`` (None without a training)."""
        return read_json(self.training_dir / TRAINING_REPORT) if self.training_dir else None

    @cached_property
    def _benchmark_metrics(self):
        return read_json(self.benchmark_dir / BENCHMARK_METRICS) if self.benchmark_dir else None

    @property
    def metrics(self):
        """``metrics.json`` of the benchmark, or the metrics computed from DL2 (None without either).
        Computed entries (the effective area of ``--read-dl2``) are added to the read ones."""
        read = self._benchmark_metrics
        if read is None:
            return self.computed
        return {**read, **(self.computed or {})}

    def theta2_images(self):
        """``{file name: PNG bytes}`` of the θ² plots of the benchmark (or of the DL2 computation)."""
        images = dict(self.computed_theta2)
        if self.benchmark_dir:
            for path in sorted(self.benchmark_dir.glob("theta2_*.png")):
                images.setdefault(path.name, path.read_bytes())
        return images

    def benchmark_inputs(self):
        """The DL2 files the metrics are measured on."""
        if self.dl2_files:
            return list(self.dl2_files)
        header = self._benchmark_metrics or {}
        return [Path(p) for p in header.get("input_files", [])]


def expand_patterns(pattern):
    """Paths of one pattern (glob); a pattern matching nothing stays as given (reported later)."""
    matches = sorted(glob.glob(str(Path(pattern).expanduser())))
    return [Path(m) for m in matches] or [Path(pattern)]


def _is_dl2(path):
    try:
        with tables.open_file(path) as h5:
            return "/dl2" in h5
    except (OSError, tables.HDF5ExtError) as err:
        raise BoardInputError(f"{path}: not a readable HDF5 file ({err})") from None


def _below(directory, name, depth=2):
    """``directory/name`` if present, else the ``name`` files one or two folders down (sorted)."""
    if (directory / name).is_file():
        return [directory]
    found = []
    for level in range(1, depth + 1):
        for path in sorted(directory.glob("/".join(["*"] * level) + "/" + name)):
            parts = path.relative_to(directory).parts[:-1]
            if not any(p.startswith(".") or p in _SKIPPED for p in parts):
                found.append(path.parent)
        if found:
            return found
    return found


def _choose_benchmark(directory, benchmarks):
    """One benchmark of several: the quickstart's point-like one (it holds the sensitivity and
    the detection), else the first by name."""
    chosen = next((b for b in benchmarks if "point" in b.name), benchmarks[0])
    others = ", ".join(str(b.relative_to(directory)) for b in benchmarks if b != chosen)
    log.info("%s: benchmark %s used (also found: %s)", directory, chosen.relative_to(directory), others)
    return chosen


def _directory_run(path, name):
    trainings = _below(path, TRAINING_REPORT)
    benchmarks = _below(path, BENCHMARK_METRICS)
    if len(trainings) > 1:
        listed = ", ".join(str(t.relative_to(path)) for t in trainings[:3])
        raise BoardInputError(
            f"{path}: holds {len(trainings)} training outputs ({listed}{', ...' if len(trainings) > 3 else ''}); "
            f"give each as its own RUN (a glob works: '{path}/*')"
        )
    if not trainings and not benchmarks:
        raise BoardInputError(
            f"{path}: neither a training output ({TRAINING_REPORT}), a benchmark report ({BENCHMARK_METRICS}) "
            "nor a folder holding them"
        )
    benchmark = _choose_benchmark(path, benchmarks) if len(benchmarks) > 1 else (benchmarks or [None])[0]
    return Run(name=name or path.name, path=path, training_dir=(trainings or [None])[0], benchmark_dir=benchmark)


def find_run(argument, name=None):
    """The `Run` of one (expanded) argument: a directory, a json file of a run, or DL2 file(s) joined by commas."""
    parts = [Path(p) for p in str(argument).split(",") if p]
    for part in parts:
        if not part.exists():
            raise BoardInputError(f"{part}: no such file or directory")
    if len(parts) == 1 and parts[0].is_dir():
        return _directory_run(parts[0].absolute(), name)
    if len(parts) == 1 and parts[0].name in (TRAINING_REPORT, BENCHMARK_METRICS):
        return _directory_run(parts[0].absolute().parent, name)
    for part in parts:
        if part.is_dir() or part.suffix.lower() not in _DL2_SUFFIXES or not _is_dl2(part):
            raise BoardInputError(
                f"{part}: not a DL2 file (an HDF5 file with /dl2), a training output or a benchmark report"
            )
    stems = [p.name.split(".")[0] for p in parts]
    return Run(name=name or "+".join(stems), path=parts[0].absolute(), dl2_files=tuple(p.absolute() for p in parts))


def find_runs(arguments, names=()):
    """Runs of all arguments, globs expanded (in each comma-separated part), in order.

    ``names`` (one per run after expansion) replace the folder names; names that
    repeat get their parent folder in front.
    """
    expanded = []
    for argument in arguments:
        pieces = [expand_patterns(part) for part in str(argument).split(",") if part]
        if len(pieces) == 1 and glob.has_magic(str(argument)):
            expanded.extend(_runs_of_glob(argument, pieces[0]))
        elif len(pieces) == 1:
            expanded.append(str(pieces[0][0]))
        else:  # a comma-joined DL2 run: each part's matches join the one run
            expanded.append(",".join(str(p) for matches in pieces for p in matches))
    if not expanded:
        raise BoardInputError("no RUN given: give training, benchmark or DL2 paths")
    if names and len(names) != len(expanded):
        raise BoardInputError(f"{len(names)} --name value(s) for {len(expanded)} run(s): give one per run, in order")
    runs = [find_run(argument, names[i] if names else None) for i, argument in enumerate(expanded)]
    return _unique_names(runs)


def _runs_of_glob(pattern, matches):
    """The matches of a glob that are runs: a folder of runs also holds logs and configs, which
    are skipped (a path named on its own that is no run is an error instead)."""
    kept = []
    for path in matches:
        try:
            find_run(path)
        except BoardInputError as err:
            log.warning("%s (matched by %s): skipped", err, pattern)
            continue
        kept.append(str(path))
    if not kept:
        raise BoardInputError(f"{pattern}: matches no training output, benchmark report or DL2 file")
    return kept


def _unique_names(runs):
    seen = {}
    for run in runs:
        seen.setdefault(run.name, []).append(run)
    for name, same in seen.items():
        if len(same) > 1:
            for run in same:
                run.name = f"{run.path.parent.name}/{name}"
    counts = {}
    for run in runs:  # still the same (same parent names): number them
        counts[run.name] = counts.get(run.name, 0) + 1
        if counts[run.name] > 1:
            run.name = f"{run.name} ({counts[run.name]})"
    return runs
