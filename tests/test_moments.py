"""Image moments inside γ-PhysNet: Hillas in the telescope frame, and the disp-structured direction."""

import astropy.units as u
import numpy as np
import pytest
import torch
from ctapipe.coordinates import TelescopeFrame
from ctapipe.image import hillas_parameters, tailcuts_clean
from test_lattice import hex_geometry

from ctapipe_gammalearn.lattice import Lattice
from ctapipe_gammalearn.nn import GammaPhysNet
from ctapipe_gammalearn.nn.moments import NOMINAL_PIXEL_PITCH_DEG, ImageMoments

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def lst_geometry(lst1_subarray):
    return lst1_subarray.tel[1].camera.geometry


@pytest.fixture(scope="module")
def lattice(lst_geometry):
    return Lattice.from_geometry(lst_geometry)


@torch.no_grad()
def run(layer, charge, rel_time=None):
    """The layer on numpy inputs (features of zeros: only the gate bias counts), numpy outputs."""
    charge = torch.as_tensor(np.atleast_2d(charge), dtype=torch.float32)
    rel_time = (
        torch.zeros_like(charge) if rel_time is None else torch.as_tensor(np.atleast_2d(rel_time), dtype=torch.float32)
    )
    features = torch.zeros(charge.shape[0], layer.gate.in_features, charge.shape[1])
    return tuple(out[0].numpy() for out in layer(features, charge, rel_time))


def test_lattice_knows_telescope_frame_positions(lst_geometry, lattice):
    sky = lst_geometry.transform_to(TelescopeFrame())
    np.testing.assert_allclose(lattice.fov_positions[:, 0], sky.pix_x.to_value(u.deg))
    np.testing.assert_allclose(lattice.fov_positions[:, 1], sky.pix_y.to_value(u.deg))
    restored = Lattice.from_dict(lattice.to_dict())
    np.testing.assert_array_equal(restored.fov_positions, lattice.fov_positions)


def test_geometry_without_focal_length_falls_back_to_lattice_units():
    lattice = Lattice.from_geometry(hex_geometry(radius=3))
    assert lattice.fov_positions is None
    cart = lattice.cartesian()
    # neighbour distance is 1 in lattice units
    d = np.linalg.norm(cart[:, None] - cart[None], axis=2)
    assert np.isclose(np.min(d[d > 0]), 1.0)
    moments = ImageMoments(4, lattice)
    np.testing.assert_allclose(moments.positions.numpy(), cart * NOMINAL_PIXEL_PITCH_DEG, rtol=1e-6)


def noisy_image(sky, rng, psi_deg=30.0, skewness=0.4, intensity=3000, x=0.6, y=-0.4):
    from ctapipe.image.toymodel import SkewedGaussian

    # SkewedGaussian needs a positive skewness: turn the image round for negative ones
    model = SkewedGaussian(
        x=x * u.deg,
        y=y * u.deg,
        width=0.05 * u.deg,
        length=0.2 * u.deg,
        psi=(psi_deg if skewness >= 0 else psi_deg + 180.0) * u.deg,
        skewness=max(abs(skewness), 1e-3),
    )
    image, _, _ = model.generate_image(sky, intensity=intensity, nsb_level_pe=0, rng=rng)
    return image + rng.normal(0.0, 2.0, size=image.shape)


def test_cleaning_is_ctapipe_tailcuts(lst_geometry, lattice):
    sky = lst_geometry.transform_to(TelescopeFrame())
    rng = np.random.default_rng(5)
    layer = ImageMoments(4, lattice, picture=8.0, boundary=4.0)
    for intensity in (250, 600, 3000):
        image = noisy_image(sky, rng, intensity=intensity)
        expected = tailcuts_clean(lst_geometry, image, 8.0, 4.0, min_number_picture_neighbors=1)
        mask = layer.cleaning_mask(torch.as_tensor(image, dtype=torch.float32).unsqueeze(0))[0].numpy()
        np.testing.assert_array_equal(mask.astype(bool), expected)
        assert expected.sum() > 3


@pytest.mark.parametrize("psi_deg, skewness", [(30.0, 0.4), (-65.0, -0.3), (88.0, 0.0)])
def test_moments_match_ctapipe_hillas(lst_geometry, lattice, psi_deg, skewness):
    """With the gate open, the moments are Hillas's of the tailcuts-cleaned image, in the telescope frame."""
    sky = lst_geometry.transform_to(TelescopeFrame())
    image = noisy_image(sky, np.random.default_rng(1), psi_deg, skewness)
    clean = tailcuts_clean(lst_geometry, image, 8.0, 4.0, min_number_picture_neighbors=1)
    hillas = hillas_parameters(sky[clean], image[clean])

    layer = ImageMoments(4, lattice, picture=8.0, boundary=4.0)
    torch.nn.init.constant_(layer.gate.bias, 30.0)  # sigmoid = 1
    features, centroid, axis = run(layer, image)
    np.testing.assert_allclose(centroid[0], hillas.fov_lon.to_value(u.deg), atol=1e-4)
    np.testing.assert_allclose(centroid[1], hillas.fov_lat.to_value(u.deg), atol=1e-4)
    np.testing.assert_allclose(features[2], np.log10(1 + hillas.intensity), rtol=1e-4)
    np.testing.assert_allclose(features[3] * 0.1, hillas.length.to_value(u.deg), rtol=1e-3)
    np.testing.assert_allclose(features[4] * 0.1, hillas.width.to_value(u.deg), rtol=1e-3)
    psi = hillas.psi.to_value(u.rad)
    # the axis is ψ's direction, oriented with a non-negative first component
    expected = np.array([np.cos(psi), np.sin(psi)]) * np.sign(np.cos(psi))
    np.testing.assert_allclose(axis, expected, atol=1e-3)
    # skewness along that axis: ctapipe measures it along ψ
    np.testing.assert_allclose(features[8], hillas.skewness * np.sign(np.cos(psi)), atol=2e-3)


def test_cleaning_keeps_the_moments_on_the_image(lattice, lst_geometry):
    """Night-sky noise over the whole camera must not pull the centroid or the length."""
    sky = lst_geometry.transform_to(TelescopeFrame())
    image = noisy_image(sky, np.random.default_rng(3), psi_deg=20.0, skewness=0.0, intensity=200, x=1.0, y=0.5)
    plain, c_plain, _ = run(ImageMoments(4, lattice, picture=0.0, boundary=0.0), image)
    clean, c_clean, _ = run(ImageMoments(4, lattice), image)
    true = np.array([1.0, 0.5])
    assert np.linalg.norm(c_clean - true) < 0.05
    assert np.linalg.norm(c_plain - true) > 4 * np.linalg.norm(c_clean - true)
    assert clean[3] * 0.1 < 0.3 < plain[3] * 0.1  # length in deg; the model's is 0.2


def test_time_slope_follows_the_time_gradient(lattice):
    pos = lattice.fov_positions
    charge = 100.0 * np.exp(-((pos[:, 0] - 0.3) ** 2 / 0.2**2 + (pos[:, 1] / 0.05) ** 2))
    layer = ImageMoments(4, lattice, picture=10.0, boundary=5.0)
    slopes = []
    for gradient in (-1.0, 0.0, 2.0):  # normalised time units per degree along fov_lon
        features, _, axis = run(layer, charge, gradient * pos[:, 0])
        assert axis[0] > 0.99
        slopes.append(float(features[9]))
    np.testing.assert_allclose(slopes, [-1.0, 0.0, 2.0], atol=1e-3)


def test_direction_is_the_centroid_plus_disp_along_the_axis(lattice):
    torch.manual_seed(0)
    model = GammaPhysNet(lattice, "small").eval()
    last = model.direction[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, lattice.n_pixels, generator=gen)
    image[:, 100:160] += 300.0 * torch.rand(2, 60, generator=gen)
    peak_time = torch.full_like(image, 10.0)
    with torch.no_grad():
        _, centroid, axis = model.features(image, peak_time)
        fov = model(image, peak_time)[3]
    # tanh(0) = 0: no disp, no correction
    torch.testing.assert_close(fov, centroid)
    with torch.no_grad():
        last.bias[0] = 1.0  # |disp| = softplus(1)
        last.bias[1] = 20.0  # sign +1
        fov = model(image, peak_time)[3]
    disp = torch.nn.functional.softplus(torch.tensor(1.0))
    torch.testing.assert_close(fov, centroid + disp * axis)
