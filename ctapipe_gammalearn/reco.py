"""γ-PhysNet as a ctapipe `~ctapipe.reco.Reconstructor` (the ``ctapipe_reco`` plugin).

Per telescope event it fills ``event.dl2.tel[i].energy/<particle type>/geometry``
under the prefixes of `ctapipe_gammalearn.dl2`, and their stereo mean into
``event.dl2.stereo``. Inference runs on onnxruntime; torch is not needed.
"""

from collections import defaultdict

import astropy.units as u
import numpy as np
from ctapipe.core import Provenance, QualityQuery
from ctapipe.core.tool import ToolConfigurationError
from ctapipe.core.traits import Integer, List, Path, Unicode
from ctapipe.io import DataLevel
from ctapipe.reco import Reconstructor
from ctapipe.reco.stereo_combination import StereoMeanCombiner

from .compat import PARTICLE_TYPE_KEY, telescope_pointing
from .dl2 import CONTAINERS, PREFIXES, columns_to_container, dl2_columns
from .lattice import geometry_fingerprint
from .runtime import load_model

__all__ = [
    "GammaPhysNetQualityQuery",
    "GammaPhysNetReconstructor",
    "MissingImagesError",
    "match_models",
]

#: attribute of ``event.dl2.tel[i]`` per property
_DL2_KEYS = {
    "ENERGY": "energy",
    "PARTICLE_TYPE": PARTICLE_TYPE_KEY,
    "GEOMETRY": "geometry",
}
_IMAGE_LEVELS = (DataLevel.R0, DataLevel.R1, DataLevel.DL0, DataLevel.DL1_IMAGES)
REPROCESS_HINT = "reprocess it with ctapipe-process --write-images (GammaPhysNet needs DL1 images)"


class MissingImagesError(ToolConfigurationError):
    """Input without DL1 images."""


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
        fingerprint = geometry_fingerprint(tel.camera.geometry)
        candidates = [r for r in runtimes if r.card.geometry_fingerprint == fingerprint]
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


def _find_event_source(component):
    """The EventSource of the Tool this component belongs to, if any."""
    seen = 0
    while component is not None and seen < 10:
        source = getattr(component, "event_source", None)
        if source is not None:
            return source
        component = getattr(component, "parent", None)
        seen += 1
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
        self._check_input_has_images()
        if not self.model_paths:
            raise ToolConfigurationError(
                "GammaPhysNetReconstructor.model_paths is empty: give at least one exported model"
            )
        n_threads = self.n_threads if self.n_threads is not None else self.n_jobs
        self.runtimes = [
            load_model(path, providers=self.providers or None, n_threads=n_threads)
            for path in self.model_paths
        ]
        for path in self.model_paths:
            Provenance().add_input_file(str(path), role="GammaPhysNet model", add_meta=False)
        self.tel_runtime = match_models(self.runtimes, subarray)
        positions = subarray.positions
        self._tel_xy = {tel_id: positions[tel_id][:2].to(u.m) for tel_id in subarray.tel}
        without = sorted({str(subarray.tel[t]) for t, r in self.tel_runtime.items() if r is None})
        if without:
            self.log.warning("No GammaPhysNet model for %s: predictions will be invalid", without)

        self.stereo_combiners = {
            prop: StereoMeanCombiner(
                prefix=prefix,
                property=prop,
                parent=self,
                **({"log_target": True} if prop.name == "ENERGY" else {}),
            )
            for prop, prefix in PREFIXES.items()
        }

    def _check_input_has_images(self):
        source = _find_event_source(self.parent)
        if source is None or not hasattr(source, "datalevels"):
            return
        if not any(level in source.datalevels for level in _IMAGE_LEVELS):
            url = getattr(source, "input_url", "input")
            raise MissingImagesError(f"{url}: the file has no DL1 images; {REPROCESS_HINT}")

    def _passes_quality(self, parameters):
        features = parameters.as_dict(recursive=True, flatten=True, add_prefix=True)
        return bool(all(self.quality_query(**features)))

    def __call__(self, event):
        tel_ids = sorted(event.trigger.tels_with_trigger)
        groups = defaultdict(list)
        for tel_id in tel_ids:
            runtime = self.tel_runtime.get(tel_id)
            dl1 = event.dl1.tel[tel_id]
            if runtime is None or not self._passes_quality(dl1.parameters):
                continue
            if dl1.image is None:
                raise MissingImagesError(f"event {event.index.event_id}: no DL1 image; {REPROCESS_HINT}")
            groups[runtime].append(tel_id)

        predicted = set()
        for runtime, ids in groups.items():
            image = np.stack([event.dl1.tel[t].image for t in ids])
            peak_time = np.stack([_peak_time(event.dl1.tel[t], image.shape[1]) for t in ids])
            outputs = runtime.predict(image, peak_time)
            pointing = [telescope_pointing(event, t) for t in ids]
            columns = dl2_columns(
                outputs,
                valid=np.ones(len(ids), dtype=bool),
                pointing_alt=u.Quantity([p[0] for p in pointing]),
                pointing_az=u.Quantity([p[1] for p in pointing]),
                tel_x=u.Quantity([self._tel_xy[t][0] for t in ids]),
                tel_y=u.Quantity([self._tel_xy[t][1] for t in ids]),
                gamma_index=runtime.card.gamma_class_index,
            )
            for row, tel_id in enumerate(ids):
                for prop, values in columns.items():
                    container = columns_to_container(prop, values, row)
                    getattr(event.dl2.tel[tel_id], _DL2_KEYS[prop.name])[PREFIXES[prop]] = container
                predicted.add(tel_id)

        for tel_id in tel_ids:
            if tel_id in predicted:
                continue
            for prop, prefix in PREFIXES.items():
                container = CONTAINERS[prop](is_valid=False)
                container.prefix = f"{prefix}_tel"
                getattr(event.dl2.tel[tel_id], _DL2_KEYS[prop.name])[prefix] = container

        for combiner in self.stereo_combiners.values():
            combiner(event)


def _peak_time(dl1, n_pixels):
    if dl1.peak_time is None:
        return np.full(n_pixels, np.nan, dtype=np.float32)
    return dl1.peak_time
