"""Differentiable Hillas moments of a softly cleaned image, in the telescope frame.

A head that regresses the source position from pooled features has to learn
"centroid + disp × main axis", a product of quantities it must first find,
and with little data it does not. Here the network computes the centroid and
the main axis itself, as Hillas does, and the direction head predicts only
what Hillas+disp leaves to a random forest: the signed distance along the axis
(``disp``) and a small correction across it (see `GammaPhysNet.forward`).

The pixel weights are ``charge * tailcuts_mask * sigmoid(gate)``. The mask
is ctapipe's tailcuts cleaning (picture/boundary thresholds, at least one
picture neighbour), computed on the lattice's neighbour table: second and
third moments are dominated by any isolated noise pixel far from the image,
so a plain threshold is not enough. The gate, a learned projection of the
first stage's features, starts open and can refine the cleaning.
"""

import numpy as np
import torch
from torch import nn

__all__ = ["ImageMoments", "NOMINAL_PIXEL_PITCH_DEG"]

#: pixel pitch assumed for a camera whose geometry has no focal length (no
#: telescope-frame positions): the direction then comes out in that lattice's
#: own frame, which is good for tests and nothing else
NOMINAL_PIXEL_PITCH_DEG = 0.1
_EPS_DEG2 = 1e-8  # (0.1 mdeg)^2: keeps square roots and axis normalisation finite
#: lengths and widths are fed to the heads in these units, to be of order one
_LENGTH_UNIT_DEG = 0.1
_SKEW_CLIP = 5.0
_SLOPE_CLIP = 20.0


def _neighbour_table(lattice):
    """(P, K-1) neighbour indices without the pixel itself; missing ones point at P (a zero pad)."""
    table = np.asarray(lattice.neighbours, dtype=np.int64)
    n = len(table)
    is_self = table == np.arange(n)[:, None]
    if not np.all(is_self.sum(axis=1) == 1):  # the kernel's centre tap reads the pixel itself
        raise ValueError(f"{lattice.camera_name}: neighbour table without exactly one self entry per pixel")
    others = table[~is_self].reshape(n, -1)
    return np.where(others >= 0, others, n)


class ImageMoments(nn.Module):
    """Centroid, main axis and Hillas-like features of the image.

    ``forward(x, charge, rel_time)``: ``x`` the first stage's features in
    pixel layout (N, C, P), ``charge`` (N, P) in p.e. with NaN already replaced,
    ``rel_time`` (N, P) the normalised relative peak time. Returns
    ``(features (N, N_FEATURES), centroid (N, 2) deg, axis (N, 2) unit)``.

    The axis is oriented with a non-negative first component (like Hillas
    ψ in (-90°, 90°]); skewness and time slope are measured along it, so the
    heads can tell which way along the axis the source lies.
    """

    N_FEATURES = 10

    def __init__(self, channels, lattice, picture=8.0, boundary=4.0):
        super().__init__()
        if lattice.fov_positions is not None:
            positions = np.asarray(lattice.fov_positions, dtype=np.float64)
        else:
            positions = lattice.cartesian() * NOMINAL_PIXEL_PITCH_DEG
        self.register_buffer("positions", torch.as_tensor(positions, dtype=torch.float32), persistent=False)
        self.register_buffer("neighbours", torch.as_tensor(_neighbour_table(lattice)), persistent=False)
        self.gate = nn.Linear(channels, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, 3.0)  # start nearly open: plain tailcuts
        self.picture = float(picture)
        self.boundary = float(boundary)
        # module attributes, not globals: TorchScript reads floats only from here
        self.eps2 = _EPS_DEG2
        self.length_unit = _LENGTH_UNIT_DEG
        self.skew_clip = _SKEW_CLIP
        self.slope_clip = _SLOPE_CLIP

    def _count_neighbours(self, flag):
        """Per pixel, how many of its neighbours have ``flag`` (N, P) set."""
        padded = torch.cat([flag, torch.zeros_like(flag[:, :1])], dim=1)
        return padded[:, self.neighbours].sum(dim=2)

    def cleaning_mask(self, charge):
        """ctapipe's ``tailcuts_clean`` (min_number_picture_neighbors=1), as 0/1 floats."""
        above_picture = (charge >= self.picture).to(charge.dtype)
        core = above_picture * (self._count_neighbours(above_picture) >= 1).to(charge.dtype)
        above_boundary = (charge >= self.boundary).to(charge.dtype)
        near_core = (self._count_neighbours(core) >= 1).to(charge.dtype)
        # a core pixel always has a neighbour above the boundary (its picture neighbour)
        return torch.maximum(core, above_boundary * near_core)

    def weights(self, x, charge):
        gate = torch.sigmoid(self.gate(x.transpose(1, 2))[..., 0])  # (N, P)
        return charge * self.cleaning_mask(charge) * gate

    def forward(self, x, charge, rel_time):
        w = self.weights(x, charge)
        size = w.sum(dim=1)
        p = w / torch.clamp(size, min=1e-3).unsqueeze(1)
        centroid = p @ self.positions
        dx = self.positions[:, 0].unsqueeze(0) - centroid[:, :1]
        dy = self.positions[:, 1].unsqueeze(0) - centroid[:, 1:]
        sxx = (p * dx * dx).sum(dim=1)
        sxy = (p * dx * dy).sum(dim=1)
        syy = (p * dy * dy).sum(dim=1)
        diff = sxx - syy
        two_xy = 2.0 * sxy
        root = torch.sqrt(diff * diff + two_xy * two_xy + self.eps2 * self.eps2)
        length = torch.sqrt(0.5 * (sxx + syy + root) + self.eps2)
        width = torch.sqrt(torch.clamp(0.5 * (sxx + syy - root), min=0.0) + self.eps2)
        # major-axis eigenvector (diff + root, 2 sxy): first component >= 0
        ax = diff + root
        norm = torch.sqrt(ax * ax + two_xy * two_xy + self.eps2 * self.eps2)
        axis = torch.stack([ax / norm, two_xy / norm], dim=1)
        along = dx * axis[:, :1] + dy * axis[:, 1:]
        skewness = (p * along**3).sum(dim=1) / length**3
        time_slope = (p * along * rel_time).sum(dim=1) / (length * length)
        features = torch.stack(
            [
                centroid[:, 0],
                centroid[:, 1],
                torch.log10(1.0 + size),
                length / self.length_unit,
                width / self.length_unit,
                width / length,  # |disp| grows with the ellipticity; a ratio is hard for ReLUs
                diff / root,  # cos 2ψ
                two_xy / root,  # sin 2ψ
                torch.clamp(skewness, -self.skew_clip, self.skew_clip),
                torch.clamp(time_slope, -self.slope_clip, self.slope_clip),
            ],
            dim=1,
        )
        return features, centroid, axis
