"""ctapipe-apply-gammalearn: γ-PhysNet on a DL1 file with images, in large batches."""

import pathlib
import shutil
import tempfile

import numpy as np
import tables
from astropy.table import vstack
from ctapipe.core import Provenance
from ctapipe.core.tool import ToolConfigurationError
from ctapipe.core.traits import Bool, Integer, Path, flag
from ctapipe.io import TableLoader, write_table
from ctapipe.io.astropy_helpers import join_allow_empty, read_table
from ctapipe.io.hdf5dataformat import DL1_SUBARRAY_TRIGGER_TABLE, DL1_TEL_IMAGES_GROUP
from ctapipe.io.tableio import TelListToMaskTransform
from ctapipe.reco.reconstructor import ReconstructionProperty
from ctapipe.reco.stereo_combination import StereoMeanCombiner
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..data.inputs import LSTCHAIN, DL1InputError, dl1_format
from ..dl2 import ENERGY_PREFIX, PREFIXES, dl2_group
from ..io.ctapipe_dl1 import write_ctapipe_dl1
from ..io.lstchain import NO_IMAGES_HINT, LSTChainDL1File
from ..reco import REPROCESS_HINT, GammaPhysNetQualityQuery, GammaPhysNetReconstructor, MissingImagesError
from .base import GammaLearnTool

__all__ = ["ApplyGammaPhysNet", "main"]

_ENERGY = ReconstructionProperty.ENERGY  # its is_valid is the count the log reports
#: DL1 parameters the stereo combiner weights by
_WEIGHT_COLUMNS = ("hillas_intensity", "hillas_length", "hillas_width")


class ApplyGammaPhysNet(GammaLearnTool):
    """Apply exported γ-PhysNet models to all telescope events of a DL1 file with images.

    Writes the same DL2 tables as ``ctapipe-process`` with the
    GammaPhysNetReconstructor, and keeps everything already in the input.
    An lstchain DL1 file is first rewritten as ctapipe DL1 (`ctapipe_gammalearn.io`),
    which the output then holds with the DL2.
    """

    name = "ctapipe-apply-gammalearn"
    description = __doc__
    examples = """
    ctapipe-apply-gammalearn --input gamma.dl1.h5 --output gamma.dl2.h5 \\
        --model lst.onnx --model nectarcam.onnx
    """

    input_url = Path(
        default_value=None, allow_none=True, directory_ok=False, help="DL1 file with images"
    ).tag(config=True)
    output_path = Path(default_value=None, allow_none=True, directory_ok=False, help="DL2 output file").tag(
        config=True
    )
    chunk_size = Integer(20000, help="subarray events read at once").tag(config=True)
    progress_bar = Bool(True, help="show a progress bar").tag(config=True)

    aliases = {
        ("i", "input"): "ApplyGammaPhysNet.input_url",
        ("o", "output"): "ApplyGammaPhysNet.output_path",
        ("m", "model"): "GammaPhysNetReconstructor.model_paths",
        "chunk-size": "ApplyGammaPhysNet.chunk_size",
        "batch-size": "GammaPhysNetReconstructor.batch_size",
        "n-threads": "GammaPhysNetReconstructor.n_threads",
    }
    flags = flag("progress", "ApplyGammaPhysNet.progress_bar", "show a progress bar", "no progress bar")
    classes = [GammaPhysNetReconstructor, GammaPhysNetQualityQuery, StereoMeanCombiner, LSTChainDL1File]

    def setup(self):
        self._check_paths()
        self._check_input()
        self.dl1_path = self._ctapipe_dl1()
        # the camera-frame layout does not depend on the focal length; every file has EQUIVALENT
        self.loader = self.enter_context(TableLoader(self.dl1_path, focal_length_choice="EQUIVALENT"))
        self.subarray = self.loader.subarray
        # nothing else runs during the batches: let onnxruntime's threads spin, unless configured
        spin = {} if "spin_threads" in self.config.GammaPhysNetReconstructor else {"spin_threads": True}
        self.reconstructor = GammaPhysNetReconstructor(self.subarray, parent=self, **spin)
        self.n_images = 0
        self.n_predicted = 0

    def _check_paths(self):
        if self.input_url is None or self.output_path is None:
            raise ToolConfigurationError("--input and --output are required")
        if not self.input_url.is_file():
            raise ToolConfigurationError(f"{self.input_url}: input file not found")
        if self.output_path.resolve() == self.input_url.resolve():
            raise ToolConfigurationError(f"{self.output_path}: output must differ from the input")
        self.check_output(self.output_path)

    def _check_input(self):
        try:
            self.input_format = dl1_format(self.input_url)
        except DL1InputError as err:
            raise ToolConfigurationError(str(err)) from None
        if self.input_format == LSTCHAIN:
            with LSTChainDL1File(self.input_url) as source:
                if not source.has_images:
                    raise MissingImagesError(f"{self.input_url}: lstchain DL1 without images; {NO_IMAGES_HINT}")
            return
        try:
            with tables.open_file(self.input_url, "r") as h5:
                has_images = DL1_TEL_IMAGES_GROUP in h5 and len(h5.get_node(DL1_TEL_IMAGES_GROUP)._v_children) > 0
                existing = [prop for prop in PREFIXES if dl2_group(prop, telescope=True) in h5]
        except (OSError, tables.HDF5ExtError) as err:
            raise ToolConfigurationError(f"{self.input_url}: not a readable HDF5 file ({err})") from None
        if existing:
            raise ToolConfigurationError(
                f"{self.input_url}: already has {PREFIXES[existing[0]]} DL2 tables; apply to the DL1 file instead"
            )
        if not has_images:
            raise MissingImagesError(f"{self.input_url}: the file has no DL1 images; {REPROCESS_HINT}")

    def _ctapipe_dl1(self):
        """The input, or for lstchain its ctapipe DL1 rewrite in a folder removed at exit."""
        if self.input_format != LSTCHAIN:
            return self.input_url
        folder = self.enter_context(tempfile.TemporaryDirectory(dir=self.output_path.parent, prefix=".lstchain-"))
        converted = pathlib.Path(folder) / "dl1.h5"
        with LSTChainDL1File(self.input_url, parent=self) as source:
            write_ctapipe_dl1(source, converted, chunk_size=self.chunk_size)
        self.log.info("lstchain DL1 %s rewritten as ctapipe DL1", self.input_url)
        return converted

    def start(self):
        chunks = self.loader.read_telescope_events_by_id_chunked(
            self.chunk_size,
            dl1_images=True,
            dl1_parameters=True,
            dl2=False,
            simulated=False,
            true_images=False,
            true_parameters=False,
            instrument=False,
            observation_info=True,
            pointing=True,
        )
        bar = tqdm(total=chunks.n_total, unit=" array events", desc="γ-PhysNet", disable=not self.progress_bar)
        with atomic_path(self.output_path) as tmp, bar:
            # a byte copy keeps every table of the input and is much faster than a merge
            shutil.copyfile(self.dl1_path, tmp)
            for start, stop, tel_tables in chunks:
                self._apply(tmp, tel_tables, start, stop)
                bar.update(stop - start)

    def _apply(self, output, tel_tables, start, stop):
        """Telescope and stereo DL2 of one chunk of array events, appended to ``output``."""
        predictions = {
            tel_id: self.reconstructor.predict_table(self.subarray.tel[tel_id], table)
            for tel_id, table in tel_tables.items()
            if len(table) > 0
        }
        for tel_id, per_prop in predictions.items():
            for prop, table in per_prop.items():
                write_table(table, output, f"{dl2_group(prop, telescope=True)}/tel_{tel_id:03d}", append=True)
            self.n_images += len(tel_tables[tel_id])
            self.n_predicted += int(np.count_nonzero(per_prop[_ENERGY][f"{ENERGY_PREFIX}_tel_is_valid"]))
        if predictions:
            self._combine(output, tel_tables, predictions, start, stop)

    def _combine(self, output, tel_tables, predictions, start, stop):
        """Stereo means through the reconstructor's StereoMeanCombiners, like ctapipe-apply-models."""
        # the combiner needs telescope events grouped by array event, in file order
        trigger = read_table(self.loader.h5file, DL1_SUBARRAY_TRIGGER_TABLE, start=start, stop=stop)
        trigger = trigger[["obs_id", "event_id"]]
        trigger["__order__"] = np.arange(len(trigger))
        for prop, combiner in self.reconstructor.stereo_combiners.items():
            mono = vstack([_with_weights(per_prop[prop], tel_tables[t]) for t, per_prop in predictions.items()])
            mono = join_allow_empty(mono, trigger, keys=["obs_id", "event_id"], join_type="left")
            mono.sort(["__order__", "tel_id"])
            stereo = self._telescope_masks(combiner.predict_table(mono))
            write_table(stereo, output, dl2_group(prop, telescope=False), append=True)

    def _telescope_masks(self, stereo):
        """``*_telescopes`` lists of tel_ids as boolean masks over the subarray, as ctapipe writes them."""
        trafo = TelListToMaskTransform(self.subarray)
        for column in [c for c in stereo.colnames if c.endswith("telescopes")]:
            description = stereo[column].description
            stereo[column] = np.array([trafo(r) for r in stereo[column]])
            stereo[column].description = description
        return stereo

    def finish(self):
        Provenance().add_input_file(str(self.input_url), role="DL1")
        Provenance().add_output_file(str(self.output_path), role="DL2")
        self.log.info(
            "γ-PhysNet predictions for %d of %d telescope events written to %s",
            self.n_predicted,
            self.n_images,
            self.output_path,
        )


def _with_weights(mono, tel_table):
    """Telescope predictions with the DL1 parameters the combiner may weight by."""
    mono = mono.copy(copy_data=False)
    for name in _WEIGHT_COLUMNS:
        if name in tel_table.colnames:
            mono[name] = tel_table[name]
    return mono


def main():
    ApplyGammaPhysNet().run()


if __name__ == "__main__":
    main()
