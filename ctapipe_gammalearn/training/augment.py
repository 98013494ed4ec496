"""Training-time augmentation of camera images, applied to whole batches.

Both are off by default. They use an explicit `torch.Generator` so that a
seeded run, and a resumed one, draw the same noise.
"""

import numpy as np
import torch

__all__ = ["Augmentation"]


class Augmentation:
    """Poisson NSB injection ("MC + Poisson") and peak-time jitter.

    ``nsb_pe``: mean extra night-sky p.e. per pixel; a Poisson draw minus its
    mean is added, as the pedestal of the extra light is subtracted in real
    data. ``pixel_nsb_pe``: the same with a mean per pixel (matched NSB,
    `training.nsb_match`). ``time_jitter_ns``: standard deviation of Gaussian noise added to
    the peak times.
    """

    def __init__(self, nsb_pe: float = 0.0, time_jitter_ns: float = 0.0, pixel_nsb_pe=None):
        if nsb_pe < 0 or time_jitter_ns < 0:
            raise ValueError("augmentation amplitudes must be >= 0")
        self.nsb_pe = float(nsb_pe)
        self.time_jitter_ns = float(time_jitter_ns)
        self.pixel_nsb_pe = None
        if pixel_nsb_pe is not None:
            rate = torch.as_tensor(np.asarray(pixel_nsb_pe, dtype=np.float32))
            if rate.dim() != 1 or not bool(torch.all(rate >= 0)):
                raise ValueError("pixel_nsb_pe: one mean >= 0 per pixel")
            self.pixel_nsb_pe = rate if bool(torch.any(rate > 0)) else None

    @property
    def active(self) -> bool:
        return self.nsb_pe > 0 or self.time_jitter_ns > 0 or self.pixel_nsb_pe is not None

    def __call__(self, image, peak_time, generator: torch.Generator):
        if self.nsb_pe > 0:
            rate = torch.full_like(image, self.nsb_pe)
            image = image + torch.poisson(rate, generator=generator) - self.nsb_pe
        if self.pixel_nsb_pe is not None:  # matched NSB: a mean per pixel (training.nsb_match)
            rate = self.pixel_nsb_pe.to(image.dtype).expand_as(image)
            image = image + torch.poisson(rate, generator=generator) - rate
        if self.time_jitter_ns > 0:
            noise = torch.randn(peak_time.shape, generator=generator, dtype=peak_time.dtype)
            peak_time = peak_time + self.time_jitter_ns * noise
        return image, peak_time
