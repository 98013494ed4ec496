"""ctapipe-apply-gammalearn: γ-PhysNet on a DL1 file with images, in large batches."""

import os
import shutil

import astropy.units as u
import numpy as np
import tables
from astropy.table import vstack
from ctapipe.core import Provenance, Tool
from ctapipe.core.tool import ToolConfigurationError
from ctapipe.core.traits import Bool, Integer, List, Path, Unicode, flag
from ctapipe.io import TableLoader, write_table
from ctapipe.io.astropy_helpers import join_allow_empty, read_table
from ctapipe.io.tableio import TelListToMaskTransform
from ctapipe.reco.reconstructor import ReconstructionProperty
from ctapipe.reco.stereo_combination import StereoMeanCombiner
from tqdm.auto import tqdm

from ..compat import PARTICLE_TYPE_KEY
from ..dl2 import PREFIXES, columns_to_table, dl2_columns
from ..modelcard import OUTPUT_NAMES, OUTPUTS
from ..reco import REPROCESS_HINT, GammaPhysNetQualityQuery, MissingImagesError, match_models
from ..runtime import load_model

__all__ = ["ApplyGammaPhysNet", "main", "group_name"]

IMAGES_GROUP = "/dl1/event/telescope/images"
DL2_TEL_GROUP = "/dl2/event/telescope"
DL2_SUBARRAY_GROUP = "/dl2/event/subarray"
TRIGGER_TABLE = "/dl1/event/subarray/trigger"


def group_name(prop):
    """HDF5 group of a property: the name ctapipe-process uses for its container."""
    return PARTICLE_TYPE_KEY if prop is ReconstructionProperty.PARTICLE_TYPE else str(prop)


def _pointing(table):
    """Telescope pointing per row; fixed subarray alt/az pointing as fallback (simulations)."""
    if "telescope_pointing_altitude" in table.colnames:
        return (
            table["telescope_pointing_altitude"].quantity.to(u.deg),
            table["telescope_pointing_azimuth"].quantity.to(u.deg),
        )
    if "subarray_pointing_lat" in table.colnames:
        return (
            table["subarray_pointing_lat"].quantity.to(u.deg),
            table["subarray_pointing_lon"].quantity.to(u.deg),
        )
    raise ToolConfigurationError("input has no pointing information")


class ApplyGammaPhysNet(Tool):
    """Apply exported γ-PhysNet models to all telescope events of a DL1 file with images.

    Writes the same DL2 tables as ``ctapipe-process`` with the
    GammaPhysNetReconstructor, and keeps everything already in the input.
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
    model_paths = List(
        Path(directory_ok=False), default_value=[], help="exported models, at most one per telescope type"
    ).tag(config=True)
    chunk_size = Integer(20000, help="subarray events read at once").tag(config=True)
    batch_size = Integer(512, help="images per inference call").tag(config=True)
    n_threads = Integer(default_value=None, allow_none=True, help="inference threads; None: all cores").tag(
        config=True
    )
    providers = List(Unicode(), default_value=[], help="onnxruntime providers; empty: CUDA if it works, else CPU").tag(
        config=True
    )
    overwrite = Bool(False, help="replace an existing output").tag(config=True)
    progress_bar = Bool(True, help="show a progress bar").tag(config=True)

    aliases = {
        ("i", "input"): "ApplyGammaPhysNet.input_url",
        ("o", "output"): "ApplyGammaPhysNet.output_path",
        ("m", "model"): "ApplyGammaPhysNet.model_paths",
        "chunk-size": "ApplyGammaPhysNet.chunk_size",
        "batch-size": "ApplyGammaPhysNet.batch_size",
        "n-threads": "ApplyGammaPhysNet.n_threads",
    }
    flags = {
        **flag("progress", "ApplyGammaPhysNet.progress_bar", "show a progress bar", "no progress bar"),
        "overwrite": ({"ApplyGammaPhysNet": {"overwrite": True}}, "replace an existing output"),
    }
    classes = [GammaPhysNetQualityQuery, StereoMeanCombiner]

    def setup(self):
        if self.input_url is None or self.output_path is None:
            raise ToolConfigurationError("--input and --output are required")
        if not self.model_paths:
            raise ToolConfigurationError("give at least one --model")
        if not self.input_url.is_file():
            raise ToolConfigurationError(f"{self.input_url}: input file not found")
        if self.output_path.resolve() == self.input_url.resolve():
            raise ToolConfigurationError(f"{self.output_path}: output must differ from the input")
        self.check_output(self.output_path)
        self._check_input()

        self.runtimes = [
            load_model(p, providers=self.providers or None, n_threads=self.n_threads) for p in self.model_paths
        ]
        # the camera-frame layout does not depend on the focal length; every file has EQUIVALENT
        self.loader = self.enter_context(TableLoader(self.input_url, focal_length_choice="EQUIVALENT"))
        self.subarray = self.loader.subarray
        self.tel_runtime = match_models(self.runtimes, self.subarray)
        self.quality_query = GammaPhysNetQualityQuery(parent=self)
        self.combiners = {
            prop: StereoMeanCombiner(
                prefix=prefix,
                property=prop,
                parent=self,
                **({"log_target": True} if prop is ReconstructionProperty.ENERGY else {}),
            )
            for prop, prefix in PREFIXES.items()
        }
        self._tel_xy = {t: self.subarray.positions[t][:2].to(u.m) for t in self.subarray.tel}
        self._tmp = self.output_path.with_name(f".{self.output_path.name}.{os.getpid()}.tmp")
        self.n_images = 0
        self.n_predicted = 0

    def _check_input(self):
        try:
            with tables.open_file(self.input_url, "r") as h5:
                has_images = IMAGES_GROUP in h5 and len(h5.get_node(IMAGES_GROUP)._v_children) > 0
                for prefix in PREFIXES.values():
                    for key in ("energy", PARTICLE_TYPE_KEY, "geometry"):
                        if f"{DL2_TEL_GROUP}/{key}/{prefix}" in h5:
                            raise ToolConfigurationError(
                                f"{self.input_url}: already has {prefix} DL2 tables; apply to the DL1 file instead"
                            )
        except (OSError, tables.HDF5ExtError) as err:
            raise ToolConfigurationError(f"{self.input_url}: not a readable HDF5 file ({err})") from None
        if not has_images:
            raise MissingImagesError(f"{self.input_url}: the file has no DL1 images; {REPROCESS_HINT}")

    def start(self):
        try:
            # a byte copy keeps every table of the input and is much faster than a merge
            shutil.copyfile(self.input_url, self._tmp)
            self._apply_all()
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def _apply_all(self):
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
        with tqdm(
            total=chunks.n_total, unit=" array events", desc="γ-PhysNet", disable=not self.progress_bar
        ) as bar:
            for start, stop, tel_tables in chunks:
                predictions = {
                    tel_id: self._predict_telescope(tel_id, table)
                    for tel_id, table in tel_tables.items()
                    if len(table) > 0
                }
                for tel_id, per_prop in predictions.items():
                    for prop, table in per_prop.items():
                        path = f"{DL2_TEL_GROUP}/{group_name(prop)}/{PREFIXES[prop]}/tel_{tel_id:03d}"
                        write_table(table, self._tmp, path, append=True)
                self._combine(tel_tables, predictions, start, stop)
                bar.update(stop - start)

    def _predict_telescope(self, tel_id, table):
        n = len(table)
        self.n_images += n
        runtime = self.tel_runtime.get(tel_id)
        outputs = {name: np.full((n, *_trailing(runtime, name)), np.nan, np.float32) for name in OUTPUT_NAMES}
        valid = np.zeros(n, dtype=bool)
        if runtime is not None:
            valid = np.asarray(self.quality_query.get_table_mask(table), dtype=bool)
            if valid.any():
                predicted = runtime.predict(
                    np.asarray(table["image"][valid]),
                    np.asarray(table["peak_time"][valid]),
                    batch_size=self.batch_size,
                )
                for name in OUTPUT_NAMES:
                    outputs[name][valid] = predicted[name]
                self.n_predicted += int(valid.sum())
        pointing_alt, pointing_az = _pointing(table)
        columns = dl2_columns(
            outputs,
            valid,
            pointing_alt,
            pointing_az,
            self._tel_xy[tel_id][0],
            self._tel_xy[tel_id][1],
            gamma_index=runtime.card.gamma_class_index if runtime is not None else 0,
        )
        result = {}
        for prop, values in columns.items():
            out = columns_to_table(prop, values)
            for col in ("obs_id", "event_id", "tel_id"):
                out.add_column(table[col], index=["obs_id", "event_id", "tel_id"].index(col), name=col)
            result[prop] = out
        return result

    def _combine(self, tel_tables, predictions, start, stop):
        if not predictions:
            return
        # the combiner needs telescope events grouped by array event, in file order
        trigger = read_table(self.loader.h5file, TRIGGER_TABLE, start=start, stop=stop)[["obs_id", "event_id"]]
        trigger["__order__"] = np.arange(len(trigger))
        trafo = TelListToMaskTransform(self.subarray)
        for prop, combiner in self.combiners.items():
            mono = []
            for tel_id, per_prop in predictions.items():
                table = per_prop[prop].copy(copy_data=False)
                if "hillas_intensity" in tel_tables[tel_id].colnames:
                    for col in ("hillas_intensity", "hillas_length", "hillas_width"):
                        table[col] = tel_tables[tel_id][col]
                mono.append(table)
            mono = join_allow_empty(vstack(mono), trigger, keys=["obs_id", "event_id"], join_type="left")
            mono.sort(["__order__", "tel_id"])
            stereo = combiner.predict_table(mono)
            for column in [c for c in stereo.colnames if c.endswith("telescopes")]:
                description = stereo[column].description
                stereo[column] = np.array([trafo(r) for r in stereo[column]])
                stereo[column].description = description
            write_table(stereo, self._tmp, f"{DL2_SUBARRAY_GROUP}/{group_name(prop)}/{PREFIXES[prop]}", append=True)

    def finish(self):
        if not self._tmp.exists():
            return
        self._tmp.replace(self.output_path)
        Provenance().add_input_file(str(self.input_url), role="DL1")
        for path in self.model_paths:
            Provenance().add_input_file(str(path), role="GammaPhysNet model", add_meta=False)
        Provenance().add_output_file(str(self.output_path), role="DL2")
        self.log.info(
            "γ-PhysNet predictions for %d of %d telescope events written to %s",
            self.n_predicted,
            self.n_images,
            self.output_path,
        )


def _trailing(runtime, name):
    """Per-row shape of an output (from the model card; two classes without a model)."""
    shape = OUTPUTS[name]["shape"][1:] if runtime is None else runtime.card.outputs[name]["shape"][1:]
    n_classes = 2 if runtime is None else len(runtime.card.class_names)
    return tuple(n_classes if s == "n_classes" else s for s in shape)


def main():
    ApplyGammaPhysNet().run()


if __name__ == "__main__":
    main()
