"""``ctapipe-gammalearn-benchmark``: every DL2 reconstructor of the input files, side by side."""

import re
import shutil
import tempfile
from pathlib import Path

import astropy.units as u
import numpy as np
from ctapipe.core import Provenance, Tool, ToolConfigurationError
from ctapipe.core.traits import AstroQuantity, Bool, Dict, Float, Int, List, flag
from ctapipe.core.traits import Path as PathTrait
from tqdm.auto import tqdm

from .. import __version__
from ..compat import PARTICLE_TYPE_KEY
from ..evaluation.events import (
    TEL_TYPE_COLUMN,
    BenchmarkInputError,
    BenchmarkQualityQuery,
    load_events,
    quality_columns,
    select_events,
)
from ..evaluation.metrics import energy_bins
from ..evaluation.plots import plot_metric, plot_roc, plot_sensitivity
from ..evaluation.report import (
    BY_TYPE,
    METRICS,
    REFERENCE_PREFIXES,
    benchmark_all,
    choose_references,
    format_tables,
    section_level,
    section_metrics,
    to_json,
)
from ..evaluation.sensitivity import (
    ALPHA,
    FOV_OFFSET_MAX,
    OBSERVATION_TIME,
    SensitivityUnavailable,
    format_sensitivity,
    sensitivity_all,
)

__all__ = ["BenchmarkTool", "main"]


class BenchmarkTool(Tool):
    """Energy, direction and gamma/hadron benchmarks of all reconstructors in DL2 files.

    Every reconstructor is measured on the same events (those passing the
    quality selection), per bin of true energy, mono (telescope; also per
    telescope type when there are several) and stereo (subarray) where present.
    Writes ``metrics.json``, one PNG per metric and level (and telescope type),
    and prints the tables; with point-like gammas and diffuse protons that
    carry their simulation information, also the 50 h point-source
    sensitivity of each method (``sensitivity.png``).
    """

    name = "ctapipe-gammalearn-benchmark"
    description = __doc__
    examples = """
    ctapipe-gammalearn-benchmark --input gamma_test.dl2.h5 --input proton_test.dl2.h5 --output-dir report
    """

    input_files = List(PathTrait(directory_ok=False), default_value=[], help="DL2 files with simulated truth").tag(
        config=True
    )
    output_dir = PathTrait(default_value=None, allow_none=True, help="directory for metrics.json and plots").tag(
        config=True
    )
    energy_min = AstroQuantity(default_value=0.02 * u.TeV, physical_type=u.physical.energy, help="lowest true-energy edge").tag(
        config=True
    )
    energy_max = AstroQuantity(default_value=200 * u.TeV, physical_type=u.physical.energy, help="highest true-energy edge").tag(
        config=True
    )
    bins_per_decade = Int(5, help="true-energy bins per decade").tag(config=True)
    min_events = Int(10, help="bins with fewer events report NaN").tag(config=True)
    gamma_efficiency = Float(0.7, help="gamma efficiency of the per-bin gammaness cut").tag(config=True)
    background_ids = List(Int(), default_value=[101], help="true_shower_primary_id of the background").tag(
        config=True
    )
    reference = Dict(
        default_value={},
        help=(
            "reference prefix per kind (energy, geometry, "
            f"{PARTICLE_TYPE_KEY}) for the ratios; default: the Hillas+RF baseline {REFERENCE_PREFIXES}"
        ),
    ).tag(config=True)

    aliases = {
        ("i", "input"): "BenchmarkTool.input_files",
        ("o", "output-dir"): "BenchmarkTool.output_dir",
        "energy-min": "BenchmarkTool.energy_min",
        "energy-max": "BenchmarkTool.energy_max",
        "bins-per-decade": "BenchmarkTool.bins_per_decade",
        "gamma-efficiency": "BenchmarkTool.gamma_efficiency",
        "min-events": "BenchmarkTool.min_events",
    }
    flags = {
        **flag("overwrite", "Tool.overwrite", "replace an existing output directory", "keep it"),
        **flag("progress", "BenchmarkTool.progress_bar", "show a progress bar", "no progress bar"),
    }
    classes = [BenchmarkQualityQuery]

    progress_bar = Bool(False, help="show progress bars").tag(config=True)

    def setup(self):
        if not self.input_files:
            raise ToolConfigurationError("no input: give at least one DL2 file with --input")
        if self.output_dir is None:
            raise ToolConfigurationError("no output directory: give --output-dir")
        self.output_dir = Path(self.output_dir)
        if self.output_dir.exists() and not self.overwrite:
            raise ToolConfigurationError(f"{self.output_dir}: exists; use --overwrite to replace it")
        if not 0 < self.gamma_efficiency < 1:
            raise ToolConfigurationError(f"gamma efficiency must be in (0, 1), got {self.gamma_efficiency}")
        self.quality_query = BenchmarkQualityQuery(parent=self)
        self.bins = energy_bins(self.energy_min, self.energy_max, self.bins_per_decade)

    def start(self):
        criteria = list(self.quality_query.quality_criteria)
        try:
            tel, sub, self.reconstructors = load_events(
                self.input_files, parameter_columns=quality_columns(criteria), progress=self.progress_bar
            )
            self.tel, self.sub = select_events(tel, sub, criteria)
        except BenchmarkInputError as err:
            raise ToolConfigurationError(str(err)) from None
        for path in self.input_files:
            Provenance().add_input_file(str(path), role="DL2 with simulated truth")
        self.log.info("common selection: %d of %d telescope events, %d of %d subarray events",
                      len(self.tel), len(tel), len(self.sub), len(sub))
        self.references = choose_references(self.reconstructors, {**REFERENCE_PREFIXES, **{
            kind: [prefix] for kind, prefix in self.reference.items()}})
        self.metrics, self.tables = benchmark_all(
            self.tel,
            self.sub,
            self.reconstructors,
            self.bins,
            gamma_efficiency=self.gamma_efficiency,
            background_ids=tuple(self.background_ids),
            min_events=self.min_events,
        )
        print(format_tables(self.tables, self.references, self.metrics))
        self.sensitivity_tables = {}
        try:
            sensitivity, self.sensitivity_tables = sensitivity_all(
                self.input_files, self.sub, self.reconstructors, self.references, self.bins
            )
        except SensitivityUnavailable as err:
            self.log.warning("no sensitivity curve: %s", err)
        else:
            self.metrics["sensitivity"] = {
                "observation_time_h": OBSERVATION_TIME.to_value(u.h),
                "alpha": ALPHA,
                "background_fov_offset_max_deg": FOV_OFFSET_MAX.to_value(u.deg),
                "source_spectrum": "CRAB_HEGRA",
                "background_spectrum": "IRFDOC_PROTON_SPECTRUM",
                "methods": sensitivity,
            }
            print("\n" + format_sensitivity(self.sensitivity_tables))

    def finish(self):
        parent = self.output_dir.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        # everything goes to a sibling temporary directory, renamed at the end
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.output_dir.name}.", dir=parent))
        tmp.chmod(0o755)  # mkdtemp makes it private
        try:
            header = {
                "ctapipe_gammalearn_version": __version__,
                "input_files": [str(p) for p in self.input_files],
                "energy_bins_tev": self.bins.to_value(u.TeV).tolist(),
                "quality_criteria": [list(c) for c in self.quality_query.quality_criteria],
                "gamma_efficiency": self.gamma_efficiency,
                "background_ids": list(self.background_ids),
                "min_events": self.min_events,
                "n_selected": self._n_selected(),
                "references": self.references,
            }
            (tmp / "metrics.json").write_text(to_json(self.metrics, **header))
            written = ["metrics.json"]
            jobs = [
                (section, metric)
                for section in self.tables
                for metric, (kind, _, _) in METRICS.items()
                if self.tables[section][kind]
            ]
            for section, metric in tqdm(jobs, desc="plots", disable=not self.progress_bar):
                kind = METRICS[metric][0]
                reference = self.references[section_level(section)].get(kind)
                name = f"{_file_stem(section)}_{metric}.png"
                plot_metric(self.tables[section][kind], metric, reference, tmp / name, title=section)
                written.append(name)
            for section in self.tables:
                measured = section_metrics(self.metrics, section)
                # a section with one particle type has no ROC curve to draw
                if any(kinds.get(PARTICLE_TYPE_KEY, {}).get("roc", {}).get("fpr") for kinds in measured.values()):
                    name = f"{_file_stem(section)}_roc.png"
                    plot_roc(measured, PARTICLE_TYPE_KEY, tmp / name, title=section)
                    written.append(name)
            if self.sensitivity_tables:
                title = f"point source, {OBSERVATION_TIME:g}"
                plot_sensitivity(self.sensitivity_tables, tmp / "sensitivity.png", reference="reference", title=title)
                written.append("sensitivity.png")
            if self.output_dir.exists():
                shutil.rmtree(self.output_dir)
            tmp.rename(self.output_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for name in written:
            Provenance().add_output_file(str(self.output_dir / name), role="benchmark report", add_meta=False)
        self.log.info("report written to %s", self.output_dir)

    def _n_selected(self):
        counts = {"mono": len(self.tel), "stereo": len(self.sub)}
        if BY_TYPE in self.metrics:
            types = np.asarray(self.tel[TEL_TYPE_COLUMN])
            counts[BY_TYPE] = {t: int(np.count_nonzero(types == t)) for t in self.metrics[BY_TYPE]}
        return counts


def _file_stem(section):
    """``mono/LST_LST_LSTCam`` -> ``mono_LST_LST_LSTCam``: a plain file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", section.replace("/", "_"))


def main():
    BenchmarkTool().run()


if __name__ == "__main__":
    main()
