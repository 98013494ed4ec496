"""``ctapipe-gammalearn-benchmark``: every DL2 reconstructor of the input files, side by side."""

import astropy.units as u
import tables
from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import AstroQuantity, Bool, Dict, Float, Int, List, Unicode, flag
from ctapipe.core.traits import Path as PathTrait

from .. import __version__
from ..compat import PARTICLE_TYPE_KEY
from ..evaluation.detection import DetectionInputError, off_rotation_angles
from ..evaluation.events import (
    BenchmarkInputError,
    BenchmarkQualityQuery,
    load_events,
    quality_columns,
    select_events,
)
from ..evaluation.metrics import energy_bins
from ..evaluation.observation import (
    CUTS_FILE,
    ObservationUnavailable,
    cuts_methods,
    format_observation,
    is_observed,
    method_triples,
    observation_entry,
    observed_observations,
    read_cuts,
    simulated_observations,
)
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
    sensitivity of each method (``sensitivity.png``) and the detection of the Crab in
    ``--observation-time`` (the ``observation`` table, ``theta2_*.png``, ``cuts.ecsv``).

    Inputs without simulation truth are observed runs: their on/off detection of the
    source at ``--source-ra``/``--source-dec``, runs stacked, with the cuts of
    ``--cuts-from`` (a simulated report's ``cuts.ecsv``) or ``--gammaness-threshold``
    and ``--on-radius``.
    """

    name = "ctapipe-gammalearn-benchmark"
    description = __doc__
    examples = """
    ctapipe-gammalearn-benchmark --input gamma_test.dl2.h5 --input proton_test.dl2.h5 --output-dir report
    ctapipe-gammalearn-benchmark --input run_1.dl2.h5 --input run_2.dl2.h5 --source-ra 83.633 \
        --source-dec 22.0145 --cuts-from report/cuts.ecsv --output-dir crab
    """

    input_files = List(PathTrait(directory_ok=False), default_value=[], help="DL2 files with simulated truth").tag(
        config=True
    )
    output_path = PathTrait(default_value=None, allow_none=True, help="directory for metrics.json and plots").tag(
        config=True
    )
    energy_min = AstroQuantity(
        default_value=0.02 * u.TeV, physical_type=u.physical.energy, help="lowest true-energy edge"
    ).tag(config=True)
    energy_max = AstroQuantity(
        default_value=200 * u.TeV, physical_type=u.physical.energy, help="highest true-energy edge"
    ).tag(config=True)
    bins_per_decade = Int(5, help="true-energy bins per decade").tag(config=True)
    min_events = Int(10, help="bins with fewer events report NaN").tag(config=True)
    gamma_efficiency = Float(0.7, help="gamma efficiency of the per-bin gammaness cut").tag(config=True)
    background_ids = List(Int(), default_value=[101], help="true_shower_primary_id of the background").tag(config=True)
    reference = Dict(
        default_value={},
        help=(
            "reference prefix per kind (energy, geometry, "
            f"{PARTICLE_TYPE_KEY}) for the ratios; default: the Hillas+RF baseline {REFERENCE_PREFIXES}"
        ),
    ).tag(config=True)

    observation_time = Float(1.0, help="hours of the simulated observation").tag(config=True)
    off_regions = Unicode("3", help="reflected off regions: 1 to 5, or 'max'").tag(config=True)
    on_radius = Float(None, allow_none=True, help="fixed θ cut [deg]; default: 68% containment").tag(config=True)
    reco_energy_min = Float(None, allow_none=True, help="lowest reconstructed energy [TeV]").tag(config=True)
    reco_energy_max = Float(None, allow_none=True, help="highest reconstructed energy [TeV]").tag(config=True)
    source_ra = Float(None, allow_none=True, help="source RA [deg, ICRS] of observed runs").tag(config=True)
    source_dec = Float(None, allow_none=True, help="source Dec [deg, ICRS] of observed runs").tag(config=True)
    cuts_from = PathTrait(
        default_value=None,
        allow_none=True,
        exists=True,
        help=f"cuts of a simulated report ({CUTS_FILE}) for observed runs",
    ).tag(config=True)
    gammaness_threshold = Float(0.5, help="gammaness cut of the threshold cuts").tag(config=True)

    aliases = {
        ("i", "input"): "BenchmarkTool.input_files",
        ("o", "output-dir"): "BenchmarkTool.output_path",
        "energy-min": "BenchmarkTool.energy_min",
        "energy-max": "BenchmarkTool.energy_max",
        "bins-per-decade": "BenchmarkTool.bins_per_decade",
        "gamma-efficiency": "BenchmarkTool.gamma_efficiency",
        "min-events": "BenchmarkTool.min_events",
        "observation-time": "BenchmarkTool.observation_time",
        "off-regions": "BenchmarkTool.off_regions",
        "on-radius": "BenchmarkTool.on_radius",
        "reco-energy-min": "BenchmarkTool.reco_energy_min",
        "reco-energy-max": "BenchmarkTool.reco_energy_max",
        "source-ra": "BenchmarkTool.source_ra",
        "source-dec": "BenchmarkTool.source_dec",
        "cuts-from": "BenchmarkTool.cuts_from",
        "gammaness-threshold": "BenchmarkTool.gammaness_threshold",
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
        self.n_off = self._off_regions()
        self.observed = self._observed_inputs()

    def start(self):
        if self.observed:
            self.observation_rows, self.observation_details = self._observed_runs()
            return
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
        self.observation_rows, self.observation_details = self._simulated_observation()

    def finish(self):
        if self.observed:
            self.metrics, self.tables, self.references, self.sensitivity_tables = {}, {}, {}, {}
            header = self._observed_header()
        else:
            header = self._header()
        if self.observation_rows:
            self.metrics["observation"] = observation_entry(self.observation_rows)
        written = write_report(
            self.output_path,
            self.metrics,
            self.tables,
            self.references,
            header=header,
            sensitivity_tables=self.sensitivity_tables,
            progress=self.progress_bar,
            overwrite=self.overwrite,
            observation=self.observation_details,
            cuts_file=not self.observed,
        )
        for name in written:
            Provenance().add_output_file(str(self.output_path / name), role="benchmark report", add_meta=False)
        self.log.info("report written to %s", self.output_path)

    def _header(self):
        return report_header(
            self.input_files,
            self.bins,
            self.quality_query.quality_criteria,
            self.gamma_efficiency,
            self.background_ids,
            self.min_events,
            selected_counts(self.tel, self.sub, self.metrics),
            self.references,
        )

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
        self.log.info(
            "common selection: %d of %d telescope events, %d of %d subarray events",
            len(tel_selected),
            len(tel),
            len(sub_selected),
            len(sub),
        )
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

    # ------------------------------------------------------------------ source detection

    def _off_regions(self):
        value = self.off_regions.strip().lower()
        n_off = value if value == "max" else int(value) if value.isdigit() else value
        try:
            if n_off != "max":
                off_rotation_angles(n_off)
        except DetectionInputError as err:
            raise ToolConfigurationError(str(err)) from None
        return n_off

    def _observed_inputs(self):
        """True when every input is an observed run (no simulation truth); mixing refused."""
        observed = [path for path in self.input_files if path.is_file() and _readable_observed(path)]
        if observed and len(observed) != len(self.input_files):
            raise ToolConfigurationError(
                f"{observed[0]}: an observed run (no simulated truth) among simulated inputs; benchmark them apart"
            )
        if observed and (self.source_ra is None or self.source_dec is None):
            raise ToolConfigurationError(f"{observed[0]}: an observed run needs --source-ra and --source-dec")
        return bool(observed)

    def _options(self):
        return dict(
            n_off=self.n_off,
            on_radius=None if self.on_radius is None else self.on_radius * u.deg,
            energy_min=None if self.reco_energy_min is None else self.reco_energy_min * u.TeV,
            energy_max=None if self.reco_energy_max is None else self.reco_energy_max * u.TeV,
        )

    def _simulated_observation(self):
        """Rows and details of the simulated observation; none (one log line) where the inputs allow none."""
        try:
            rows, details = simulated_observations(
                self.input_files,
                self.sub,
                self.reconstructors,
                self.references,
                tel_events=self.tel,
                observation_time=self.observation_time * u.h,
                gammaness_threshold=self.gammaness_threshold,
                **self._options(),
            )
        except (ObservationUnavailable, DetectionInputError) as err:
            self.log.warning("no observation: %s", err)
            return [], {}
        print("\n" + format_observation(rows, self._title()))
        return rows, details

    def _title(self):
        return (
            f"point source (Crab), {self.observation_time:g} h, {self.n_off} off region(s)"
            if not self.observed
            else f"observed runs, source RA {self.source_ra:g} Dec {self.source_dec:g} deg"
        )

    def _observed_runs(self):
        from ..evaluation.events import find_reconstructors

        try:
            cuts = read_cuts(self.cuts_from) if self.cuts_from is not None else None
            # the methods of the cuts file, by their prefixes; else those of the first run
            methods = cuts_methods(cuts) if cuts is not None else {}
            if not methods:
                found = find_reconstructors(self.input_files[0])
                methods = method_triples(found, choose_references(found, merge_references(self.reference)))
            rows, details = observed_observations(
                self.input_files,
                methods,
                self.source_ra * u.deg,
                self.source_dec * u.deg,
                cuts,
                gammaness_threshold=self.gammaness_threshold,
                quality_criteria=list(self.quality_query.quality_criteria),
                **self._options(),
            )
        except DetectionInputError as err:
            raise ToolConfigurationError(str(err)) from None
        for path in self.input_files:
            Provenance().add_input_file(str(path), role="DL2 of an observed run")
        if self.cuts_from is not None:
            Provenance().add_input_file(str(self.cuts_from), role="detection cuts")
        print(format_observation(rows, self._title()))
        return rows, details

    def _observed_header(self):
        return {
            "ctapipe_gammalearn_version": __version__,
            "input_files": [str(p) for p in self.input_files],
            "source_ra_deg": self.source_ra,
            "source_dec_deg": self.source_dec,
            "cuts_from": None if self.cuts_from is None else str(self.cuts_from),
            "off_regions": self.n_off,
            "on_radius_deg": self.on_radius,
            "gammaness_threshold": self.gammaness_threshold,
        }


def _readable_observed(path):
    try:
        return is_observed(path)
    except (OSError, ValueError, tables.HDF5ExtError):  # unreadable: the simulated path reports it
        return False


def main():
    BenchmarkTool().run()


if __name__ == "__main__":
    main()
