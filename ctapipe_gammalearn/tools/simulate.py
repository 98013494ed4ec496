"""ctapipe-gammalearn-simulate: generate labelled air showers into a standard ctapipe DL1 file."""

import os
import signal

import tables
from ctapipe.core import Provenance, Tool, ToolConfigurationError
from ctapipe.core.traits import Bool, Int, Path, classes_with_traits, flag
from ctapipe.image import ImageProcessor
from ctapipe.io import DataWriter
from ctapipe.reco import ShowerProcessor
from tqdm.auto import tqdm

from ..simulation import AirShowerModel, AirShowerSimEventSource, DetectorResponse
from ..simulation.parallel import ParallelSimulation, available_cores

__all__ = ["SimulateTool", "main"]


class SimulateTool(Tool):
    """Simulate gamma, proton or electron showers for a subarray (LST-1 by default) and
    write DL1 images, parameters and the simulated truth like ``ctapipe-process`` does
    for sim_telarray files."""

    name = "ctapipe-gammalearn-simulate"
    description = __doc__
    examples = """
    ctapipe-gammalearn-simulate --particle gamma --n-events 1000 --seed 1 \\
        --energy-min 0.02 --energy-max 20 --viewcone-max 0 --wobble 0.4 --output gamma.dl1.h5
    """

    output = Path(None, allow_none=True, directory_ok=False, help="Output DL1 file (HDF5)").tag(config=True)
    overwrite = Bool(False, help="Replace an existing output file").tag(config=True)
    progress_bar = Bool(True, help="Show a progress bar").tag(config=True)
    n_workers = Int(
        0, min=0, help="Processes that simulate and process showers (0: one per available CPU core);"
        " the output does not depend on it"
    ).tag(config=True)

    aliases = {
        ("o", "output"): "SimulateTool.output",
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
    }
    flags = {
        "overwrite": ({"SimulateTool": {"overwrite": True}}, "Replace an existing output file"),
        **flag("progress", "SimulateTool.progress_bar", "show a progress bar", "no progress bar"),
    }
    classes = [AirShowerSimEventSource, AirShowerModel, DetectorResponse, DataWriter] + classes_with_traits(
        ImageProcessor
    ) + classes_with_traits(ShowerProcessor)

    def setup(self):
        if self.output is None:
            raise ToolConfigurationError("no output file given: use --output FILE")
        self.output = self.output.expanduser().absolute()
        if self.output.exists() and not self.overwrite:
            raise ToolConfigurationError(f"{self.output}: already exists, use --overwrite to replace it")
        if not self.output.parent.is_dir():
            raise ToolConfigurationError(f"{self.output}: directory {self.output.parent} does not exist")
        # written under a temporary name, renamed when complete: no partial output
        self._partial = self.output.with_name(f".{self.output.name}.{os.getpid()}.partial.h5")
        self.writer = None
        try:
            self.source = AirShowerSimEventSource(parent=self)
        except ValueError as err:
            raise ToolConfigurationError(f"invalid simulation settings: {err}") from err
        self.process_images = ImageProcessor(subarray=self.source.subarray, parent=self)
        self.process_shower = ShowerProcessor(subarray=self.source.subarray, parent=self)
        try:
            self.writer = DataWriter(
                self.source,
                parent=self,
                output_path=self._partial,
                overwrite=True,
                write_dl1_images=True,
                write_dl1_parameters=True,
                write_dl2=True,
            )
        except BaseException:
            self._discard()
            raise

    def start(self):
        n_workers = self.n_workers or available_cores()
        try:
            # workers are forked first, so they keep the default SIGTERM handling
            with ParallelSimulation(self.source, self._process, n_workers) as events:
                # a terminated run must not leave its partial file behind
                previous_handler = signal.signal(signal.SIGTERM, _raise_system_exit)
                try:
                    for event in tqdm(
                        events,
                        total=self.source.n_events,
                        desc=f"simulating {self.source.particle}s",
                        unit="ev",
                        disable=not self.progress_bar,
                    ):
                        self.writer(event)
                finally:
                    signal.signal(signal.SIGTERM, previous_handler)
        except BaseException:
            self._discard()
            raise

    def _process(self, event):
        self.process_images(event)
        self.process_shower(event)

    def finish(self):
        try:
            self.writer.write_simulated_shower_distributions(self.source.simulated_shower_distributions)
            self.writer.finish()
            _set_thrown_showers(self._partial, self.source.n_thrown)
            self._partial.replace(self.output)
        except BaseException:
            self._discard()
            raise
        Provenance().add_output_file(str(self.output), role="DL1/Event")
        self.log.info(
            "%d triggered events out of %d thrown written to %s",
            self.source.n_events,
            self.source.n_thrown,
            self.output,
        )

    def _discard(self):
        writer = getattr(self, "writer", None)
        if writer is not None and writer._writer.h5file.isopen:
            writer._writer.close()
        if self._partial.exists():
            self._partial.unlink()


def _raise_system_exit(signum, frame):
    raise SystemExit(128 + signum)


def _set_thrown_showers(path, n_thrown):
    """The number of thrown showers is known only at the end: update the run header."""
    with tables.open_file(path, "r+") as h5:
        table = h5.root.configuration.simulation.run
        table.modify_column(colname="n_showers", column=[n_thrown] * table.nrows)


def main(argv=None):
    tool = SimulateTool()
    tool.run(argv)


if __name__ == "__main__":
    main()
