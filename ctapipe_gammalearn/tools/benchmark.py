"""``ctapipe-gammalearn-benchmark``: every DL2 reconstructor of the input files, side by side."""

import astropy.units as u
from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import AstroQuantity, Bool, Dict, Float, Int, List, flag
from ctapipe.core.traits import Path as PathTrait

from ..compat import PARTICLE_TYPE_KEY
from ..evaluation.events import (
    BenchmarkInputError,
    BenchmarkQualityQuery,
    load_events,
    quality_columns,
    select_events,
)
from ..evaluation.metrics import energy_bins
from ..evaluation.report import (
    REFERENCE_PREFIXES,
    benchmark_all,
    choose_references,
    format_tables,
    merge_references,
    selected_counts,
)
from ..evaluation.sensitivity import SensitivityUnavailable, format_sensitivity, sensitivity_all, sensitivity_entry
from ..evaluation.writer import report_header, write_report
from .base import GammaLearnTool

__all__ = ["BenchmarkTool", "main"]


class BenchmarkTool(GammaLearnTool):
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
    output_path = PathTrait(default_value=None, allow_none=True, help="directory for metrics.json and plots").tag(
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
        ("o", "output-dir"): "BenchmarkTool.output_path",
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
        if self.output_path is None:
            raise ToolConfigurationError("no output directory: give --output-dir")
        self.check_output(self.output_path)
        if not 0 < self.gamma_efficiency < 1:
            raise ToolConfigurationError(f"gamma efficiency must be in (0, 1), got {self.gamma_efficiency}")
        self.quality_query = BenchmarkQualityQuery(parent=self)
        self.bins = energy_bins(self.energy_min, self.energy_max, self.bins_per_decade)

    def start(self):
        self.tel, self.sub, self.reconstructors = self._selected_events()
        self.references = choose_references(self.reconstructors, merge_references(self.reference))
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
        self.sensitivity_tables = self._sensitivity()

    def finish(self):
        header = report_header(
            self.input_files,
            self.bins,
            self.quality_query.quality_criteria,
            self.gamma_efficiency,
            self.background_ids,
            self.min_events,
            selected_counts(self.tel, self.sub, self.metrics),
            self.references,
        )
        written = write_report(
            self.output_path, self.metrics, self.tables, self.references, header=header,
            sensitivity_tables=self.sensitivity_tables, progress=self.progress_bar, overwrite=self.overwrite,
        )
        for name in written:
            Provenance().add_output_file(str(self.output_path / name), role="benchmark report", add_meta=False)
        self.log.info("report written to %s", self.output_path)

    def _selected_events(self):
        """Telescope and subarray events of the common selection, and the reconstructors found."""
        criteria = list(self.quality_query.quality_criteria)
        try:
            tel, sub, reconstructors = load_events(
                self.input_files, parameter_columns=quality_columns(criteria), progress=self.progress_bar
            )
            tel_selected, sub_selected = select_events(tel, sub, criteria)
        except BenchmarkInputError as err:
            raise ToolConfigurationError(str(err)) from None
        for path in self.input_files:
            Provenance().add_input_file(str(path), role="DL2 with simulated truth")
        self.log.info("common selection: %d of %d telescope events, %d of %d subarray events",
                      len(tel_selected), len(tel), len(sub_selected), len(sub))
        return tel_selected, sub_selected, reconstructors

    def _sensitivity(self):
        """Per-method sensitivity tables, also entered in the metrics; none where the inputs allow none."""
        try:
            per_method, tables = sensitivity_all(
                self.input_files, self.sub, self.reconstructors, self.references, self.bins
            )
        except SensitivityUnavailable as err:
            self.log.warning("no sensitivity curve: %s", err)
            return {}
        self.metrics["sensitivity"] = sensitivity_entry(per_method)
        print("\n" + format_sensitivity(tables))
        return tables


def main():
    BenchmarkTool().run()


if __name__ == "__main__":
    main()
