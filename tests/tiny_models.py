"""A tiny network obeying the model I/O contract, to test the inference path fast."""

from types import SimpleNamespace

import torch

from ctapipe_gammalearn.lattice import geometry_fingerprint


class TinyNet(torch.nn.Module):
    """Dense map of the whole image to the seven contract outputs."""

    def __init__(self, n_pixels, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.proj = torch.nn.Linear(2 * n_pixels, 16)
        self.head = torch.nn.Linear(16, 12)
        self.config = {"preset": "tiny"}

    def forward(self, image, peak_time):
        x = torch.cat([torch.nan_to_num(image) / 100.0, torch.nan_to_num(peak_time) / 20.0], dim=1)
        out = self.head(torch.tanh(self.proj(x)))
        return (
            out[:, 0:2],
            out[:, 2],
            out[:, 3],
            out[:, 4:6],
            out[:, 6:8],
            out[:, 8:10] * 100.0,
            out[:, 10:12],
        )


def lattice_of(geometry):
    """Stand-in for Lattice with the attributes export needs."""
    return SimpleNamespace(
        camera_name=geometry.name,
        fingerprint=geometry_fingerprint(geometry),
        n_pixels=geometry.n_pixels,
    )


def export_tiny(subarray, telescope_type, stem, seed=0):
    """Export a TinyNet for one telescope type of a subarray; returns the export dict."""
    from ctapipe_gammalearn.nn.export import export_model

    tel = next(t for t in subarray.telescope_types if str(t) == str(telescope_type))
    geometry = tel.camera.geometry
    return export_model(TinyNet(geometry.n_pixels, seed=seed), lattice_of(geometry), str(tel), stem)
