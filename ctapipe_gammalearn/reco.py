"""γ-PhysNet as a ctapipe `~ctapipe.reco.Reconstructor` (the ``ctapipe_reco`` plugin).

Per telescope event it fills ``event.dl2.tel[i].energy/<particle type>/geometry``
under the prefixes of `ctapipe_gammalearn.dl2`, and their stereo mean into
``event.dl2.stereo``. ``predict_table`` does the same for a table of
telescope events (ctapipe's table API, used by ``ctapipe-apply-gammalearn``);
both go through one prediction function. Inference runs on onnxruntime; torch
is not needed.
"""

from collections import defaultdict

import astropy.units as u
import numpy as np
from ctapipe.core import Provenance, QualityQuery, Tool
from ctapipe.core.tool import ToolConfigurationError
from ctapipe.core.traits import Bool, Integer, List, Path, Unicode
from ctapipe.io import DataLevel, EventSource
from ctapipe.reco import Reconstructor
from ctapipe.reco.reconstructor import ReconstructionProperty

from .compat import PARTICLE_TYPE_KEY, telescope_pointing
from .dl2 import PREFIXES, columns_to_container, columns_to_table, dl2_columns
from .lattice import fingerprint_fits
from .modelcard import OUTPUT_NAMES, OUTPUTS
from .runtime import load_model
from .stereo import FastStereoMeanCombiner

__all__ = [
    "GammaPhysNetQualityQuery",
    "GammaPhysNetReconstructor",
    "MissingImagesError",
    "REPROCESS_HINT",
    "match_models",
]

#: attribute of ``event.dl2.tel[i]`` per property
_DL2_KEYS = {
    "ENERGY": "energy",
    "PARTICLE_TYPE": PARTICLE_TYPE_KEY,
    "GEOMETRY": "geometry",
}
_IMAGE_LEVELS = (DataLevel.R0, DataLevel.R1, DataLevel.DL0, DataLevel.DL1_IMAGES)
#: columns that identify a telescope event, first in every output table
_EVENT_KEYS = ("obs_id", "event_id", "tel_id")
REPROCESS_HINT = "reprocess it with ctapipe-process --write-images (GammaPhysNet needs DL1 images)"


class MissingImagesError(ToolConfigurationError):
    """Input without DL1 images."""


def _no_images_in(where):
    return MissingImagesError(f"{where}: the file has no DL1 images; {REPROCESS_HINT}")


class GammaPhysNetQualityQuery(QualityQuery):
    """Telescope events that get a γ-PhysNet prediction.

    Expressions use DL1 parameter column names (``hillas_intensity``, ...), the
    same in the event loop and in the batched tool.
    """

    quality_criteria = List(
        default_value=[("> 50 phe", "hillas_intensity > 50")],
        help=QualityQuery.quality_criteria.help,
    ).tag(config=True)


def _size_class(telescope_type):
    """'LST', 'MST', 'SST' from ``str(TelescopeDescription)``."""
    return str(telescope_type).split("_")[0]


def match_models(runtimes, subarray):
    """tel_id -> runtime (or None) by camera geometry fingerprint.

    Cameras with the same pixel layout on other optics exist (LSTCam and
    NectarCam), so among models for the telescope's pixel layout the one of
    the same telescope type wins, else the only one of the same size class
    (an LST model serves LSTs from any production). Raises
    `ToolConfigurationError` for a model that fits no telescope of the
    subarray, or for two models for the same telescope type and camera.
    """
    seen = {}
    for runtime in runtimes:
        key = (runtime.card.geometry_fingerprint, runtime.card.telescope_type)
        if key in seen:
            raise ToolConfigurationError(
                f"{runtime.path}: a second model for {runtime.card.telescope_type} "
                f"(first: {seen[key].path})"
            )
        seen[key] = runtime

    matched = {}
    for tel_id, tel in subarray.tel.items():
        candidates = [r for r in runtimes if fingerprint_fits(r.card.geometry_fingerprint, tel.camera.geometry)]
        exact = [r for r in candidates if r.card.telescope_type == str(tel)]
        same_class = [
            r for r in candidates if _size_class(r.card.telescope_type) == _size_class(str(tel))
        ]
        if exact:
            matched[tel_id] = exact[0]
        elif len(same_class) == 1:
            matched[tel_id] = same_class[0]
        else:
            matched[tel_id] = None

    used = {id(r) for r in matched.values() if r is not None}
    for runtime in runtimes:
        if id(runtime) not in used:
            types = sorted({str(tel) for tel in subarray.tel.values()})
            raise ToolConfigurationError(
                f"{runtime.path}: model is for {runtime.card.telescope_type} "
                f"(camera {runtime.card.camera_name}, fingerprint {runtime.card.geometry_fingerprint}), "
                f"which fits no telescope of the input ({', '.join(types)})"
            )
    return matched


def _running_event_source(component):
    """The EventSource of the Tool running ``component``, where that Tool says.

    ctapipe-process builds reconstructors through its ShowerProcessor (so the
    Tool is the parent or the grandparent) and keeps its source in the public
    attribute ``event_source``. Looking there lets a reconstructor refuse an
    input without images before the DataWriter creates the output file.
    """
    parent = component.parent
    for candidate in (parent, getattr(parent, "parent", None)):
        if isinstance(candidate, Tool):
            source = getattr(candidate, "event_source", None)
            return source if isinstance(source, EventSource) else None
    return None


class GammaPhysNetReconstructor(Reconstructor):
    """Energy, gammaness and direction from DL1 images with γ-PhysNet (ONNX models).

    Each telescope is matched to the model whose camera geometry fingerprint
    equals its own, so one list of models serves a mixed array. Telescopes with
    no model, or failing the quality query, get invalid (NaN) predictions.
    """

    #: ctapipe >= 0.31 asks every reconstructor; harmless before
    needs_atmosphere_profile = False

    model_paths = List(
        Path(directory_ok=False),
        default_value=[],
        help="Exported γ-PhysNet models (.onnx, or TorchScript .pt), at most one per telescope type",
    ).tag(config=True)

    n_threads = Integer(
        default_value=None,
        allow_none=True,
        help="Threads for inference per model; None: the runtime's default (all cores)",
    ).tag(config=True)

    batch_size = Integer(
        None, allow_none=True, help="Images per inference call (default: 64 on CPU, 1024 on CUDA)"
    ).tag(config=True)

    spin_threads = Bool(
        False,
        help="onnxruntime's threads busy-wait between operators: faster batches, but they hold the"
        " cores between calls (ctapipe-apply-gammalearn turns it on; an event loop needs the cores)",
    ).tag(config=True)

    providers = List(
        Unicode(),
        default_value=[],
        help=(
            "onnxruntime execution providers in order of preference;"
            " empty: CUDA when it initialises, else CPU"
        ),
    ).tag(config=True)

    def __init__(self, subarray, atmosphere_profile=None, **kwargs):
        super().__init__(subarray=subarray, atmosphere_profile=atmosphere_profile, **kwargs)
        self.quality_query = GammaPhysNetQualityQuery(parent=self)
        self._check_source_has_images()
        self.runtimes = self._load_models()
        self.tel_runtime = match_models(self.runtimes, subarray)
        without = sorted({str(subarray.tel[t]) for t, r in self.tel_runtime.items() if r is None})
        if without:
            self.log.warning("No GammaPhysNet model for %s: predictions will be invalid", without)
        self._tels_with_model = np.array([t for t, r in self.tel_runtime.items() if r is not None])
        self._n_pixels = {t: tel.camera.geometry.n_pixels for t, tel in subarray.tel.items()}
        self.stereo_combiners = {
            prop: FastStereoMeanCombiner(
                prefix=prefix,
                property=prop,
                parent=self,
                **({"log_target": True} if prop is ReconstructionProperty.ENERGY else {}),
            )
            for prop, prefix in PREFIXES.items()
        }

    def _check_source_has_images(self):
        source = _running_event_source(self)
        if source is not None and not any(level in source.datalevels for level in _IMAGE_LEVELS):
            raise _no_images_in(source.input_url)

    def _load_models(self):
        if not self.model_paths:
            raise ToolConfigurationError(
                "GammaPhysNetReconstructor.model_paths is empty: give at least one exported model"
            )
        n_threads = self.n_threads if self.n_threads is not None else self.n_jobs
        runtimes = [
            load_model(path, providers=self.providers or None, n_threads=n_threads, spin_threads=self.spin_threads)
            for path in self.model_paths
        ]
        for path in self.model_paths:
            Provenance().add_input_file(str(path), role="GammaPhysNet model", add_meta=False)
        return runtimes

    def predict_table(self, key, table):
        """DL2 tables per property for telescope events of one telescope type.

        ``key`` is the telescope type, as for ctapipe's reconstructors; the
        model is chosen per row from ``tel_id``, so the table may mix
        telescopes of that type. Every row gets a result, ``is_valid`` False
        where the telescope has no model or fails the quality query.

        Returns
        -------
        dict[ReconstructionProperty, Table]
            ``obs_id, event_id, tel_id`` and ``<prefix>_tel_<field>``, rows as in ``table``
        """
        if "image" not in table.colnames:
            raise _no_images_in(table.meta.get("input_url", f"table for {key}"))
        tel_ids = np.asarray(table["tel_id"])
        pointing_alt, pointing_az = _table_pointing(table)
        columns = self._predict_columns(
            tel_ids=tel_ids,
            image=table["image"],
            peak_time=_table_peak_time(table),
            pointing_alt=pointing_alt,
            pointing_az=pointing_az,
            passes_quality=self._table_quality(table, np.isin(tel_ids, self._tels_with_model)),
        )
        return {prop: _keyed_table(prop, values, table) for prop, values in columns.items()}

    def _table_quality(self, table, has_model):
        """Quality verdict per row; asked only for rows with a model, as in the event loop."""
        if has_model.all():
            return np.asarray(self.quality_query.get_table_mask(table), dtype=bool)
        passes = np.zeros(len(table), dtype=bool)
        if has_model.any():
            passes[has_model] = self.quality_query.get_table_mask(table[has_model])
        return passes

    def __call__(self, event):
        tel_ids = sorted(event.trigger.tels_with_trigger)
        by_n_pixels = defaultdict(list)  # images stack only within one pixel count
        for tel_id in tel_ids:
            by_n_pixels[self._n_pixels[tel_id]].append(tel_id)
        for ids in by_n_pixels.values():
            self._predict_event_telescopes(event, ids)
        for combiner in self.stereo_combiners.values():
            combiner(event)

    def _predict_event_telescopes(self, event, tel_ids):
        """Fill ``event.dl2.tel`` of telescopes with one pixel count."""
        has_model = np.isin(tel_ids, self._tels_with_model)
        passes_quality = np.array(
            [has and self._passes_quality(event.dl1.tel[t].parameters) for t, has in zip(tel_ids, has_model)],
            dtype=bool,
        )
        image, peak_time = self._event_images(event, tel_ids, passes_quality)
        pointing = [telescope_pointing(event, t) for t in tel_ids]
        columns = self._predict_columns(
            tel_ids=np.array(tel_ids),
            image=image,
            peak_time=peak_time,
            pointing_alt=u.Quantity([alt for alt, _ in pointing]),
            pointing_az=u.Quantity([az for _, az in pointing]),
            passes_quality=passes_quality,
        )
        for row, tel_id in enumerate(tel_ids):
            for prop, values in columns.items():
                container = columns_to_container(prop, values, row)
                getattr(event.dl2.tel[tel_id], _DL2_KEYS[prop.name])[PREFIXES[prop]] = container

    def _event_images(self, event, tel_ids, needed):
        """(n, n_pixels) images and peak times; NaN where no prediction is needed."""
        n_pixels = self._n_pixels[tel_ids[0]]
        image = np.full((len(tel_ids), n_pixels), np.nan, dtype=np.float32)
        peak_time = np.full_like(image, np.nan)
        for row in np.flatnonzero(needed):
            dl1 = event.dl1.tel[tel_ids[row]]
            if dl1.image is None:
                where = event.meta.get("input_url", "input")
                raise MissingImagesError(
                    f"{where}, event {event.index.event_id}: no DL1 image; {REPROCESS_HINT}"
                )
            image[row] = dl1.image
            if dl1.peak_time is not None:
                peak_time[row] = dl1.peak_time
        return image, peak_time

    def _passes_quality(self, parameters):
        features = parameters.as_dict(recursive=True, flatten=True, add_prefix=True)
        return bool(all(self.quality_query(**features)))

    def _predict_columns(self, tel_ids, image, peak_time, pointing_alt, pointing_az, passes_quality):
        """The one prediction path of `__call__` and `predict_table`.

        Parameters
        ----------
        tel_ids : (n,) int array
        image, peak_time : (n, n_pixels) arrays (or table columns) of one pixel count
        pointing_alt, pointing_az : (n,) Quantity
        passes_quality : (n,) bool, the quality query's verdict per row

        Returns
        -------
        dict[ReconstructionProperty, dict[str, array]]
            `dl2_columns` of all n rows, in input order
        """
        passes_quality = np.asarray(passes_quality, dtype=bool)
        index = self.subarray.tel_ids_to_indices(tel_ids)
        tel_x, tel_y = self.subarray.tel_coords.x[index], self.subarray.tel_coords.y[index]
        parts = []
        # an empty table still gets its (empty) columns
        groups = self._rows_by_runtime(tel_ids) or [(None, np.arange(0))]
        for runtime, rows in groups:
            valid = passes_quality[rows] & (runtime is not None)
            outputs = _network_outputs(runtime, image, peak_time, rows, valid, self.batch_size)
            columns = dl2_columns(
                outputs,
                valid,
                pointing_alt[rows],
                pointing_az[rows],
                tel_x[rows],
                tel_y[rows],
                gamma_index=runtime.card.gamma_class_index if runtime is not None else 0,
            )
            parts.append((rows, columns))
        return _merge_rows(parts, len(tel_ids))

    def _rows_by_runtime(self, tel_ids):
        """[(runtime or None, row indices)] covering every row once."""
        ids_by_runtime = defaultdict(list)
        for tel_id in np.unique(tel_ids):
            ids_by_runtime[self.tel_runtime.get(int(tel_id))].append(tel_id)
        return [
            (runtime, np.flatnonzero(np.isin(tel_ids, ids))) for runtime, ids in ids_by_runtime.items()
        ]


def _network_outputs(runtime, image, peak_time, rows, valid, batch_size):
    """Network outputs of ``rows``: predicted where ``valid``, NaN elsewhere."""
    outputs = {
        name: np.full((len(rows), *_output_shape(runtime, name)), np.nan, np.float32)
        for name in OUTPUT_NAMES
    }
    if valid.any():
        selected = rows[valid]
        predicted = runtime.predict(
            np.asarray(image[selected]), np.asarray(peak_time[selected]), batch_size=batch_size
        )
        for name in OUTPUT_NAMES:
            outputs[name][valid] = predicted[name]
    return outputs


def _output_shape(runtime, name):
    """Per-row shape of an output (from the model card; two classes without a model)."""
    card_outputs = OUTPUTS if runtime is None else runtime.card.outputs
    n_classes = 2 if runtime is None else len(runtime.card.class_names)
    return tuple(n_classes if s == "n_classes" else s for s in card_outputs[name]["shape"][1:])


def _merge_rows(parts, n):
    """Columns computed per group of rows, put back into one set of n rows."""
    if len(parts) == 1:
        return parts[0][1]  # one group holds every row, in order
    merged = defaultdict(dict)
    for rows, columns in parts:
        for prop, values in columns.items():
            for name, column in values.items():
                if name not in merged[prop]:
                    merged[prop][name] = np.empty_like(column, shape=(n, *np.shape(column)[1:]))
                merged[prop][name][rows] = column
    return dict(merged)


def _table_pointing(table):
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


def _table_peak_time(table):
    if "peak_time" in table.colnames:
        return table["peak_time"]
    return np.full(np.shape(table["image"]), np.nan, dtype=np.float32)


def _keyed_table(prop, columns, table):
    """The property's DL2 table with the event keys of ``table`` first."""
    result = columns_to_table(prop, columns)
    for position, name in enumerate(_EVENT_KEYS):
        result.add_column(table[name], index=position, name=name)
    return result
