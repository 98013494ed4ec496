"""ctapipe-gammalearn-add-nsb: a DL1 file with images, plus Poisson night-sky noise, cleaned and parametrised anew."""

import posixpath
import signal

import tables
from astropy.table import Table, vstack
from ctapipe.containers import DL2Container
from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import Bool, Float, Int, Path, classes_with_traits, flag
from ctapipe.image import ImageCleaner, ImageProcessor
from ctapipe.image.modifications import ImageModifier
from ctapipe.io import DataLevel, DataWriter, HDF5EventSource, read_table, write_table
from ctapipe.io.hdf5dataformat import CONFIG_GROUP, DL1_TEL_IMAGES_GROUP
from ctapipe.reco import ShowerProcessor
from tqdm.auto import tqdm

from ..atomic import atomic_path
from .base import GammaLearnTool

__all__ = ["AddNSBTool", "MODIFICATIONS_TABLE", "main"]

#: one row per modification of the images, in the order they were applied (kept from the input)
MODIFICATIONS_TABLE = "/configuration/image_modifications"


class AddNSBTool(GammaLearnTool):
    """Add Poisson(λ) night-sky noise to every pixel of the DL1 images of a file (λ's mean
    subtracted, so the pedestal stays at 0 as in calibrated images), then clean and
    parametrise them anew with ctapipe's ImageProcessor (its ImageModifier adds the noise)
    and write a DL1 file of the same layout: images, parameters, the simulated truth, the
    subarray and the input's configuration, with this transform recorded in
    /configuration/image_modifications. Peak times are left as they are."""

    name = "ctapipe-gammalearn-add-nsb"
    description = __doc__
    examples = """
    ctapipe-gammalearn-add-nsb --input gamma.dl1.h5 --output gamma_nsb0.4.dl1.h5 --nsb-pe 0.4 --seed 1
    """

    input_path = Path(None, allow_none=True, exists=True, directory_ok=False, help="Input DL1 file with images").tag(
        config=True
    )
    output_path = Path(None, allow_none=True, directory_ok=False, help="Output DL1 file (HDF5)").tag(config=True)
    nsb_pe = Float(
        0.4, min=0.0, help="Mean of the Poisson noise added to each pixel, p.e.; its mean is subtracted again"
    ).tag(config=True)
    seed = Int(0, min=0, help="Seed of the noise; the same seed gives the same output").tag(config=True)
    progress_bar = Bool(True, help="Show a progress bar").tag(config=True)

    aliases = {
        ("i", "input"): "AddNSBTool.input_path",
        ("o", "output"): "AddNSBTool.output_path",
        "nsb-pe": "AddNSBTool.nsb_pe",
        "seed": "AddNSBTool.seed",
    }
    flags = {
        **flag("progress", "AddNSBTool.progress_bar", "show a progress bar", "no progress bar"),
    }
    classes = (
        [HDF5EventSource, DataWriter, ImageProcessor, ImageModifier, ShowerProcessor]
        + classes_with_traits(ImageCleaner)
    )

    def setup(self):
        if self.input_path is None or self.output_path is None:
            raise ToolConfigurationError("give the input and the output file: --input FILE --output FILE")
        self.output_path = self.output_path.expanduser().absolute()
        if self.output_path == self.input_path.expanduser().absolute():
            raise ToolConfigurationError(f"{self.output_path}: the output would replace the input")
        self.check_output(self.output_path)
        _check_input(self.input_path)
        self.source = self.enter_context(self._open_source())
        subarray = self.source.subarray
        self.process_images = ImageProcessor(subarray, parent=self, apply_image_modifier=True)
        # the noise: ctapipe's ImageModifier, the same Poisson level in dim and bright pixels
        self.process_images.modify = ImageModifier(
            subarray,
            parent=self.process_images,
            noise_level_dim_pixels=self.nsb_pe,
            noise_level_bright_pixels=self.nsb_pe,
            noise_correct_bias=True,
            rng_seed=self.seed,
        )
        # the input's DL2 (if any) is recomputed from the new parameters; none is carried over
        self.write_dl2 = DataLevel.DL2 in self.source.datalevels
        self.process_shower = ShowerProcessor(subarray, parent=self) if self.write_dl2 else None

    def start(self):
        with atomic_path(self.output_path, suffix=".partial.h5") as partial:
            partial.unlink()  # the writer creates the file itself
            writer = DataWriter(
                self.source,
                parent=self,
                output_path=partial,
                write_dl1_images=True,
                write_dl1_parameters=True,
                write_dl2=self.write_dl2,
            )
            with writer, _terminate_as_exit():
                events = _read_back(self.source, self.input_path)
                for event in tqdm(events, desc="adding noise", unit="ev", disable=not self.progress_bar):
                    self._process(event)
                    writer(event)
                if self.source.is_simulation:
                    writer.write_simulated_shower_distributions(self.source.simulated_shower_distributions)
            _carry_configuration(self.input_path, partial)
            _append_modification(partial, self._modification())

    def finish(self):
        Provenance().add_output_file(str(self.output_path), role="DL1/Event")
        self.log.info(
            "Poisson noise of %g p.e. added to %s, written to %s", self.nsb_pe, self.input_path, self.output_path
        )

    def _open_source(self):
        """The input as ctapipe reads DL1 back; files without the effective focal length
        (older productions) are read with the equivalent one, as the training cache does."""
        try:
            return HDF5EventSource(input_url=self.input_path, parent=self)
        except RuntimeError as err:
            if "focal_length_choice" not in str(err):
                raise
        self.log.warning("%s has no effective focal length: using the equivalent one", self.input_path)
        return HDF5EventSource(input_url=self.input_path, parent=self, focal_length_choice="EQUIVALENT")

    def _process(self, event):
        event.dl2 = DL2Container()
        self.process_images(event)
        if self.process_shower is not None:
            self.process_shower(event)

    def _modification(self) -> dict:
        return dict(
            tool=self.name,
            poisson_mean_pe=float(self.nsb_pe),
            mean_subtracted=True,
            seed=int(self.seed),
            image_cleaner=str(self.process_images.image_cleaner_type),
            input=self.input_path.name,
        )


def _check_input(path):
    """A one-line error naming the file, unless it is an HDF5 file with DL1 images."""
    try:
        with tables.open_file(path, "r") as h5:
            if DL1_TEL_IMAGES_GROUP not in h5:
                raise ToolConfigurationError(
                    f"{path}: no DL1 images ({DL1_TEL_IMAGES_GROUP} missing); write them with ctapipe-process"
                    " --write-images or ctapipe-gammalearn-simulate"
                )
    except (tables.HDF5ExtError, OSError) as err:
        raise ToolConfigurationError(f"{path}: not a readable HDF5 file ({err})") from None


def _read_back(source, path):
    """The events of ``source``; a table ctapipe's reader cannot read (e.g. the true images
    of some older files hold only their sums) stops the tool with a one-line error."""
    events = iter(source)
    while True:
        try:
            event = next(events)
        except StopIteration:
            return
        except (KeyError, tables.NoSuchNodeError) as err:
            raise ToolConfigurationError(f"{path}: ctapipe's HDF5EventSource cannot read it back ({err})") from None
        yield event


def _carry_configuration(input_path, path):
    """Copy the tables of the input's /configuration that ctapipe's writer does not write (the
    simulator's observing conditions, earlier modifications) as they are."""
    with tables.open_file(input_path, "r") as source, tables.open_file(path, "a") as output:
        if CONFIG_GROUP not in source:
            return
        for node in source.walk_nodes(CONFIG_GROUP, "Leaf"):
            if node._v_pathname in output:
                continue
            parent = node._v_parent._v_pathname
            if parent not in output:
                output.create_group(posixpath.dirname(parent), posixpath.basename(parent), createparents=True)
            node._f_copy(newparent=output.get_node(parent))


def _append_modification(path, modification):
    """One more row of `MODIFICATIONS_TABLE`, after those the input had."""
    rows = Table(rows=[modification])
    with tables.open_file(path, "r") as h5:
        present = MODIFICATIONS_TABLE in h5
    if present:
        rows = vstack([read_table(path, MODIFICATIONS_TABLE), rows])
    write_table(rows, path, MODIFICATIONS_TABLE, overwrite=True)


class _terminate_as_exit:
    """SIGTERM unwinds like an error, so that the partial output is removed."""

    def __enter__(self):
        self.previous = signal.signal(signal.SIGTERM, _raise_system_exit)

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self.previous)


def _raise_system_exit(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    tool = AddNSBTool()
    tool.run(argv)


if __name__ == "__main__":
    main()
