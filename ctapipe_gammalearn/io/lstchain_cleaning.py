"""lstchain's image cleaning as a ctapipe `~ctapipe.image.ImageCleaner`.

lstchain (``lstchain.reco.r0_to_dl1.get_dl1``) cleans LST images with tailcuts
(picture 6 p.e., boundary 3 p.e., at least 2 picture neighbours, isolated pixels
dropped: the standard configuration of lstchain 0.7 to 0.9; 0.10 uses 8 and 4),
then drops the pixels with no neighbour within ``delta_time`` = 2 ns
(`ctapipe.image.apply_time_delta_cleaning` with one neighbour, peak times of
the tailcuts pixels only). With ``image_cleaner_type="LSTChainImageCleaner"``,
ctapipe's `~ctapipe.image.ImageProcessor` recomputes lstchain's parameters.
"""

import numpy as np
from ctapipe.core.traits import FloatTelescopeParameter
from ctapipe.image import TailcutsImageCleaner, apply_time_delta_cleaning

__all__ = ["LSTChainImageCleaner", "image_parameters"]


class LSTChainImageCleaner(TailcutsImageCleaner):
    """Tailcuts, then lstchain's time-delta cleaning (defaults of lstchain 0.7 to 0.9)."""

    picture_threshold_pe = FloatTelescopeParameter(default_value=8.0, help="picture threshold, p.e.").tag(config=True)
    boundary_threshold_pe = FloatTelescopeParameter(default_value=4.0, help="boundary threshold, p.e.").tag(
        config=True
    )
    delta_time = FloatTelescopeParameter(
        default_value=2.0, help="a pixel needs a neighbour within this many ns; None or <= 0: no time cleaning"
    ).tag(config=True)

    def __call__(self, tel_id, image, arrival_times=None, **kwargs):
        mask = super().__call__(tel_id, image, arrival_times, **kwargs)
        delta_time = self.delta_time.tel[tel_id]
        if arrival_times is None or not delta_time or delta_time <= 0 or not mask.any():
            return mask
        times = np.where(mask, arrival_times, np.nan)  # only the tailcuts pixels count, as in lstchain
        geometry = self.subarray.tel[tel_id].camera.geometry
        return apply_time_delta_cleaning(geometry, mask, times, min_number_neighbors=1, time_limit=delta_time)


def image_parameters(subarray, table, image_cleaner_type="LSTChainImageCleaner", config=None):
    """ctapipe's DL1 parameters (prefixed, flat dicts, one per row) of the images of an lstchain
    table (``image``, ``peak_time``, ``tel_id``), cleaned by ``image_cleaner_type``: what
    `~ctapipe.image.ImageProcessor` gives where lstchain's own parameters are to be checked."""
    from ctapipe.containers import ArrayEventContainer
    from ctapipe.image import ImageProcessor

    processor = ImageProcessor(subarray, image_cleaner_type=image_cleaner_type, config=config)
    rows = []
    for row in table:
        event = ArrayEventContainer()
        dl1 = event.dl1.tel[int(row["tel_id"])]
        dl1.image = np.asarray(row["image"], np.float64)
        dl1.peak_time = np.asarray(row["peak_time"], np.float64)
        processor(event)
        rows.append(dl1.parameters.as_dict(recursive=True, flatten=True, add_prefix=True))
    return rows
