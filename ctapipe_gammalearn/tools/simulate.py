"""ctapipe-gammalearn-simulate: generate labelled air showers into a standard ctapipe DL1 file."""

import signal

import tables
from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import Bool, Int, Path, classes_with_traits, flag
from ctapipe.image import ImageProcessor
from ctapipe.io import DataWriter, write_table
from ctapipe.io.hdf5dataformat import SIMULATION_RUN_TABLE
from ctapipe.reco import ShowerProcessor
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..simulation import AirShowerModel, AirShowerSimEventSource, DetectorResponse, ObservingConditions
from ..simulation.conditions import CONDITIONS_TABLE
from ..simulation.parallel import ParallelSimulation, available_cores
from .base import GammaLearnTool

__all__ = ["SimulateTool", "main"]


class SimulateTool(GammaLearnTool):
    """Simulate gamma, proton or electron showers for a subarray (LST-1 by default) and
    write DL1 images, parameters and the simulated truth like ``ctapipe-process`` does
    for sim_telarray files."""

    name = "ctapipe-gammalearn-simulate"
    description = __doc__
    examples = """
    ctapipe-gammalearn-simulate --particle gamma --n-events 1000 --seed 1 \\
        --energy-min 0.02 --energy-max 20 --viewcone-max 0 --wobble 0.4 --output gamma.dl1.h5
    # observing conditions unlike the nominal Monte Carlo (docs/domains.md)
    ctapipe-gammalearn-simulate --particle gamma --n-events 1000 --seed 1 --nsb-scale 3 --stars 3 \\
        --dead-pixel-fraction 0.02 --optical-efficiency-scale 0.8 --output gamma_shifted.dl1.h5
    """

    output_path = Path(None, allow_none=True, directory_ok=False, help="Output DL1 file (HDF5)").tag(config=True)
    progress_bar = Bool(True, help="Show a progress bar").tag(config=True)
    n_workers = Int(
        0, min=0, help="Processes that simulate and process showers (0: one per available CPU core);"
        " the output does not depend on it"
    ).tag(config=True)

    aliases = {
        ("o", "output"): "SimulateTool.output_path",
        "particle": "AirShowerSimEventSource.particle",
        ("n", "n-events"): "AirShowerSimEventSource.n_events",
        "seed": "AirShowerSimEventSource.seed",
        "energy-min": "AirShowerSimEventSource.energy_min",
        "energy-max": "AirShowerSimEventSource.energy_max",
        "spectral-index": "AirShowerSimEventSource.spectral_index",
        "viewcone-min": "AirShowerSimEventSource.viewcone_min",
        "viewcone-max": "AirShowerSimEventSource.viewcone_max",
        "wobble": "AirShowerSimEventSource.wobble",
        "core-max": "AirShowerSimEventSource.core_max",
        "zenith": "AirShowerSimEventSource.zenith",
        "azimuth": "AirShowerSimEventSource.azimuth",
        "subarray": "AirShowerSimEventSource.subarray_file",
        "obs-id": "AirShowerSimEventSource.obs_id",
        ("j", "workers"): "SimulateTool.n_workers",
        "nsb-scale": "ObservingConditions.nsb_scale",
        "nsb-gradient": "ObservingConditions.nsb_gradient",
        "stars": "ObservingConditions.n_stars",
        "dead-pixel-fraction": "ObservingConditions.dead_pixel_fraction",
        "hot-pixel-fraction": "ObservingConditions.hot_pixel_fraction",
        "optical-efficiency-scale": "ObservingConditions.optical_efficiency_scale",
        "gain-spread": "ObservingConditions.gain_spread",
        "time-offset-spread": "ObservingConditions.time_offset_spread",
        "conditions-seed": "ObservingConditions.conditions_seed",
    }
    flags = {
        **flag("progress", "SimulateTool.progress_bar", "show a progress bar", "no progress bar"),
    }
    classes = [
        AirShowerSimEventSource, AirShowerModel, DetectorResponse, ObservingConditions, DataWriter
    ] + classes_with_traits(
        ImageProcessor
    ) + classes_with_traits(ShowerProcessor)

    def setup(self):
        if self.output_path is None:
            raise ToolConfigurationError("no output file given: use --output FILE")
        self.output_path = self.output_path.expanduser().absolute()
        self.check_output(self.output_path)
        if not self.output_path.parent.is_dir():
            raise ToolConfigurationError(f"{self.output_path}: directory {self.output_path.parent} does not exist")
        try:
            self.source = AirShowerSimEventSource(parent=self)
        except ValueError as err:
            raise ToolConfigurationError(f"invalid simulation settings: {err}") from err
        self.process_images = ImageProcessor(subarray=self.source.subarray, parent=self)
        self.process_shower = ShowerProcessor(subarray=self.source.subarray, parent=self)

    def start(self):
        # written under a temporary name, renamed when complete: a failed or
        # terminated run leaves no partial output
        with atomic_path(self.output_path, suffix=".partial.h5") as partial:
            with self._open_writer(partial) as writer:
                self._simulate_into(writer)
                writer.write_simulated_shower_distributions(self.source.simulated_shower_distributions)
            _set_thrown_showers(partial, self.source.n_thrown)
            conditions = self.source.detector.conditions.to_table(self.source.obs_id)
            write_table(conditions, partial, CONDITIONS_TABLE)

    def finish(self):
        Provenance().add_output_file(str(self.output_path), role="DL1/Event")
        self.log.info(
            "%d triggered events out of %d thrown written to %s",
            self.source.n_events,
            self.source.n_thrown,
            self.output_path,
        )

    def _open_writer(self, path):
        """A DataWriter into ``path``; leaving its ``with`` block, even on an error, closes the file."""
        # the writer creates the file itself; replacing the empty temporary would log a warning
        path.unlink()
        return DataWriter(
            self.source,
            parent=self,
            output_path=path,
            write_dl1_images=True,
            write_dl1_parameters=True,
            write_dl2=True,
        )

    def _simulate_into(self, writer):
        n_workers = self.n_workers or available_cores()
        # workers are forked first, so they keep the default SIGTERM handling
        with ParallelSimulation(self.source, self._process, n_workers) as events:
            # a terminated run must unwind, so that its partial file is removed
            previous_handler = signal.signal(signal.SIGTERM, _raise_system_exit)
            try:
                for event in tqdm(
                    events,
                    total=self.source.n_events,
                    desc=f"simulating {self.source.particle}s",
                    unit="ev",
                    disable=not self.progress_bar,
                ):
                    writer(event)
            finally:
                signal.signal(signal.SIGTERM, previous_handler)

    def _process(self, event):
        self.process_images(event)
        self.process_shower(event)


def _raise_system_exit(signum, frame):
    raise SystemExit(128 + signum)


def _set_thrown_showers(path, n_thrown):
    """The number of thrown showers is known only at the end: update the run header."""
    with tables.open_file(path, "r+") as h5:
        table = h5.get_node(SIMULATION_RUN_TABLE)
        table.modify_column(colname="n_showers", column=[n_thrown] * table.nrows)


def main(argv=None):
    tool = SimulateTool()
    tool.run(argv)


if __name__ == "__main__":
    main()
