"""``ctapipe-gammalearn-board``: training runs and benchmark reports compared in one HTML page."""

import warnings

import astropy.units as u
from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import Bool, CaselessStrEnum, Float, Int, List, Unicode, flag
from ctapipe.core.traits import Path as PathTrait

from ..atomic import atomic_path
from ..board.runs import BENCHMARK_METRICS, TRAINING_REPORT, BoardInputError, expand_patterns, find_runs
from .base import GammaLearnTool

__all__ = ["BoardTool", "main"]


class BoardTool(GammaLearnTool):
    """One self-contained HTML page comparing any number of runs: a summary table, training
    curves, resolutions, AUC, effective area and sensitivity against true energy, ROC curves,
    θ² plots, and each run's configuration and provenance.

    A RUN is a training output directory (``report.json``), a benchmark report directory
    (``metrics.json``), a folder holding one of each, or DL2 file(s) (commas join gamma and
    proton files into one run; their metrics are computed here). Globs work.
    """

    name = "ctapipe-gammalearn-board"
    description = __doc__
    examples = """
    ctapipe-gammalearn-board runs/small_* runs/paper --output board.html
    ctapipe-gammalearn-board demo --name quickstart 'dl2/gamma_point.dl2.h5,dl2/proton.dl2.h5' \\
        --name from-dl2 --output board.html --png board.png
    """

    runs = List(Unicode(), default_value=[], help="runs (also given as positional arguments)").tag(config=True)
    names = List(Unicode(), default_value=[], help="names of the runs, one per run in order").tag(config=True)
    output_path = PathTrait(default_value=None, allow_none=True, directory_ok=False,
                            help="the HTML page").tag(config=True)
    png_path = PathTrait(default_value=None, allow_none=True, directory_ok=False,
                         help="also a static summary figure (PNG)").tag(config=True)
    level = CaselessStrEnum(["stereo", "mono"], default_value="stereo",
                            help="benchmark level shown (a run without it shows the other)").tag(config=True)
    reference = Unicode(default_value=None, allow_none=True, help="run shown as reference at start").tag(config=True)
    read_dl2 = Bool(False, help="re-read benchmark inputs (DL2) for the effective area").tag(config=True)
    provenance_logs = List(Unicode(), default_value=[], help="more provenance logs (globs)").tag(config=True)
    table_energies = List(Float(), default_value=[0.1, 1.0, 10.0],
                          help="true energies [TeV] of the summary table's resolution columns").tag(config=True)
    bins_per_decade = Int(5, help="true-energy bins per decade of metrics computed from DL2").tag(config=True)
    min_events = Int(10, help="bins with fewer events report nothing (DL2 inputs)").tag(config=True)
    title = Unicode("ctapipe-gammalearn experiment board", help="page title").tag(config=True)

    aliases = {
        "run": "BoardTool.runs",
        "name": "BoardTool.names",
        ("o", "output"): "BoardTool.output_path",
        "png": "BoardTool.png_path",
        "level": "BoardTool.level",
        "reference": "BoardTool.reference",
        "provenance": "BoardTool.provenance_logs",
        "bins-per-decade": "BoardTool.bins_per_decade",
        "min-events": "BoardTool.min_events",
        "title": "BoardTool.title",
    }
    flags = {
        **flag("overwrite", "Tool.overwrite", "replace existing output files", "keep them"),
        **flag("read-dl2", "BoardTool.read_dl2", "re-read the benchmarks' DL2 for the effective area",
               "metrics from json only"),
    }

    def setup(self):
        if self.output_path is None:
            raise ToolConfigurationError("no output: give --output board.html")
        for path in (self.output_path, self.png_path):
            if path is not None:
                self.check_output(path)
        try:
            self.found = find_runs([*self.runs, *self.extra_args], tuple(self.names))
        except BoardInputError as err:
            raise ToolConfigurationError(str(err)) from None
        names = [run.name for run in self.found]
        if self.reference is not None and self.reference not in names:
            raise ToolConfigurationError(f"--reference {self.reference!r} is none of the runs: {', '.join(names)}")
        from ..board.provenance import ProvenanceIndex

        logs = [p for pattern in self.provenance_logs for p in expand_patterns(pattern) if p.is_file()]
        self.provenance = ProvenanceIndex(logs)
        self.log.info("%d run(s): %s", len(self.found), ", ".join(f"{r.name} ({r.kind})" for r in self.found))

    def start(self):
        from ..board.page import build_page, collect

        try:
            self._compute_from_dl2()
            self.views = collect(self.found, self.level, self.provenance)
        except BoardInputError as err:
            raise ToolConfigurationError(str(err)) from None
        command = " ".join(["ctapipe-gammalearn-board", *(str(a) for a in self.extra_args)])
        self.page = build_page(self.views, title=self.title, command=command, reference=self.reference,
                               energies=tuple(self.table_energies))

    def finish(self):
        with atomic_path(self.output_path, suffix=".html") as tmp:
            tmp.write_text(self.page, encoding="utf-8")
        outputs = [self.output_path]
        if self.png_path is not None:
            from ..board.static import write_summary_png

            write_summary_png(self.views, self.png_path)
            outputs.append(self.png_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no ctapipe reference metadata in json, HTML or PNG
            for run in self.found:
                for path in self._inputs_of(run):
                    Provenance().add_input_file(str(path), role="board run")
            for path in outputs:
                Provenance().add_output_file(str(path), role="experiment board")
        self.log.info("board written to %s", self.output_path)

    def _compute_from_dl2(self):
        """Metrics of DL2 runs; with --read-dl2 the effective area of benchmark runs."""
        from ..board.dl2 import benchmark_effective_area, dl2_metrics
        from ..evaluation.metrics import energy_bins

        bins = energy_bins(0.02 * u.TeV, 200 * u.TeV, self.bins_per_decade)
        for run in self.found:
            if run.dl2_files:
                self.log.info("%s: computing the benchmark from %d DL2 file(s)", run.name, len(run.dl2_files))
                run.computed, run.computed_theta2 = dl2_metrics(list(run.dl2_files), bins, min_events=self.min_events)
            elif self.read_dl2 and run.benchmark_dir is not None:
                area = benchmark_effective_area(run, bins)
                run.computed = {"effective_area": area} if area else None

    @staticmethod
    def _inputs_of(run):
        if run.dl2_files:
            return list(run.dl2_files)
        found = [run.training_dir / TRAINING_REPORT] if run.training_dir else []
        return found + ([run.benchmark_dir / BENCHMARK_METRICS] if run.benchmark_dir else [])


def main():
    BoardTool().run()


if __name__ == "__main__":
    main()
