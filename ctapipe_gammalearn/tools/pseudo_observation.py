"""``ctapipe-gammalearn-pseudo-observation``: an observed-like DL2 run drawn from weighted Monte Carlo DL2."""

import astropy.units as u
import numpy as np
from astropy.time import Time
from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import Float, Int, List, Unicode, flag
from ctapipe.core.traits import Path as PathTrait
from ctapipe.instrument import SubarrayDescription

from ..atomic import atomic_path
from ..evaluation.detection import DetectionInputError
from ..evaluation.observation import CRAB_DEC, CRAB_RA
from ..evaluation.pseudo import DEFAULT_START, pseudo_observation, subarray_dl2_nodes, weighted_dl2, write_pseudo_run
from .base import GammaLearnTool

__all__ = ["PseudoObservationTool", "main"]


class PseudoObservationTool(GammaLearnTool):
    """Draws one observed-like run of ``--observation-time`` hours from simulated DL2:
    Poisson counts, events drawn by weight (Crab for the point-like gammas, the IRF-document
    spectra for protons and electrons), the array tracking the source (the Crab by default)
    in wobble at the simulated offset from the array's reference location. The DL2 columns
    of every subarray reconstructor are kept, the truth is not; background events are
    rotated around the pointing by a random angle. Readable by ``ctapipe-gammalearn-benchmark``
    as an observed run."""

    name = "ctapipe-gammalearn-pseudo-observation"
    description = __doc__
    examples = """
    ctapipe-gammalearn-pseudo-observation --gamma gamma_point_test.dl2.h5 --background proton_test.dl2.h5 \\
        --observation-time 1 --seed 1 --output run_1.dl2.h5
    """

    gamma_files = List(PathTrait(exists=True, directory_ok=False), default_value=[],
                       help="point-like gamma DL2 with simulation information").tag(config=True)
    background_files = List(PathTrait(exists=True, directory_ok=False), default_value=[],
                            help="diffuse proton (or electron) DL2 files, one particle each").tag(config=True)
    output_path = PathTrait(default_value=None, allow_none=True, directory_ok=False, help="output DL2 file").tag(
        config=True)
    observation_time = Float(1.0, help="run length [h]").tag(config=True)
    seed = Int(0, help="random seed").tag(config=True)
    obs_id = Int(1, help="obs_id (run number) of the run").tag(config=True)
    source_ra = Float(CRAB_RA.to_value(u.deg), help="tracked source RA [deg, ICRS]").tag(config=True)
    source_dec = Float(CRAB_DEC.to_value(u.deg), help="tracked source Dec [deg, ICRS]").tag(config=True)
    wobble_angle = Float(0.0, help="position angle of the pointing from the source [deg, east of north]").tag(
        config=True)
    start_time = Unicode(DEFAULT_START.isot, help="start of the run (UTC, ISO)").tag(config=True)

    aliases = {
        "gamma": "PseudoObservationTool.gamma_files",
        "background": "PseudoObservationTool.background_files",
        ("o", "output"): "PseudoObservationTool.output_path",
        "observation-time": "PseudoObservationTool.observation_time",
        "seed": "PseudoObservationTool.seed",
        "obs-id": "PseudoObservationTool.obs_id",
        "source-ra": "PseudoObservationTool.source_ra",
        "source-dec": "PseudoObservationTool.source_dec",
        "wobble-angle": "PseudoObservationTool.wobble_angle",
        "start-time": "PseudoObservationTool.start_time",
    }
    flags = {**flag("overwrite", "Tool.overwrite", "replace an existing output file", "keep it")}

    def setup(self):
        if not self.gamma_files or not self.background_files:
            raise ToolConfigurationError("give point-like gammas with --gamma and the background with --background")
        if self.output_path is None:
            raise ToolConfigurationError("no output file: give --output")
        self.check_output(self.output_path)
        if self.observation_time <= 0:
            raise ToolConfigurationError(f"observation time must be positive, got {self.observation_time}")
        try:
            self.run_start = Time(self.start_time, scale="utc")
        except ValueError as err:
            raise ToolConfigurationError(f"start time {self.start_time!r}: {err}") from None
        self.subarray = SubarrayDescription.from_hdf(self.gamma_files[0], focal_length_choice="EQUIVALENT")
        self.nodes = subarray_dl2_nodes(self.gamma_files[0])

    def start(self):
        time = self.observation_time * u.h
        try:
            gammas, particle = weighted_dl2(self.gamma_files, time)
            if particle != "gamma":
                raise DetectionInputError(f"{self.gamma_files[0]}: not gammas ({particle})")
            backgrounds = [weighted_dl2([path], time)[0] for path in self.background_files]
        except DetectionInputError as err:
            raise ToolConfigurationError(str(err)) from None
        geometry = [(f"{p}_alt", f"{p}_az") for group, p in self.nodes if group == "geometry"]
        self.events, self.info = pseudo_observation(
            gammas, backgrounds, time, self.subarray.reference_location, np.random.default_rng(self.seed),
            geometry=geometry, source_ra=self.source_ra * u.deg, source_dec=self.source_dec * u.deg,
            wobble_angle=self.wobble_angle * u.deg, start=self.run_start)
        for path in [*self.gamma_files, *self.background_files]:
            Provenance().add_input_file(str(path), role="simulated DL2")
        self.log.info("%d events drawn (%d gammas) for %.3g h, wobble %.2f", len(self.events),
                      int(np.sum(self.events["particle"] == 0)), self.observation_time, self.info["wobble_offset"])

    def finish(self):
        with atomic_path(self.output_path) as tmp:
            write_pseudo_run(tmp, self.events, self.info, self.subarray, self.nodes, obs_id=self.obs_id)
        Provenance().add_output_file(str(self.output_path), role="pseudo-observed DL2")
        self.log.info("written %s", self.output_path)


def main():
    PseudoObservationTool().run()


if __name__ == "__main__":
    main()
