"""Camera lattices: axial coordinates, neighbour tables, pooling, serialisation."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from ctapipe.instrument import CameraGeometry, PixelShape

from ctapipe_gammalearn.lattice import HEX_KERNEL_MASK, Lattice, geometry_fingerprint

HEX_CAMERAS = {"LSTCam", "NectarCam", "FlashCam", "DigiCam"}
SQUARE_CAMERAS = {"CHEC", "ASTRICam", "SCTCam"}


def hex_geometry(radius=4, rotation_deg=0.0, spacing=0.05, name="TestHex"):
    """Synthetic hexagonal camera: all axial cells within ``radius`` rings."""
    q, r = np.meshgrid(np.arange(-radius, radius + 1), np.arange(-radius, radius + 1))
    q, r = q.ravel(), r.ravel()
    keep = np.abs(q + r) <= radius
    q, r = q[keep], r[keep]
    x = spacing * (q + r / 2)
    y = spacing * r * np.sqrt(3) / 2
    return _geometry(name, x, y, rotation_deg, PixelShape.HEXAGON, spacing)


def square_geometry(n=8, rotation_deg=0.0, spacing=0.01, name="TestSquare"):
    i, j = np.meshgrid(np.arange(n), np.arange(n))
    return _geometry(name, spacing * i.ravel(), spacing * j.ravel(), rotation_deg, PixelShape.SQUARE, spacing)


def _geometry(name, x, y, rotation_deg, pix_type, spacing):
    a = np.deg2rad(rotation_deg)
    xr = x * np.cos(a) - y * np.sin(a)
    yr = x * np.sin(a) + y * np.cos(a)
    return CameraGeometry(
        name=name,
        pix_id=np.arange(len(x)),
        pix_x=u.Quantity(xr, u.m),
        pix_y=u.Quantity(yr, u.m),
        pix_area=u.Quantity(np.full(len(x), spacing**2), u.m**2),
        pix_type=pix_type,
        pix_rotation=rotation_deg * u.deg,
    )


def _read_camgeom(path):
    try:
        return CameraGeometry.from_table(path)
    except OSError:  # table versions this ctapipe cannot read
        return None


@pytest.fixture(scope="module")
def real_geometries(shared_data, lst1_subarray):
    """{label: geometry} for the camgeom files, the DL1 subarrays and LST-1."""
    from ctapipe.instrument import SubarrayDescription

    found = {}
    for path in sorted((shared_data / "camgeom").glob("*.camgeom.fits.gz")):
        geometry = _read_camgeom(path)
        if geometry is not None:
            found[path.name] = geometry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted((shared_data / "dl1").glob("*.h5")):
            subarray = SubarrayDescription.from_hdf(path, focal_length_choice="EQUIVALENT")
            for tel_type in subarray.telescope_types:
                geometry = tel_type.camera.geometry
                found.setdefault(f"{geometry.name}-{geometry.n_pixels}-{geometry.pix_rotation:.1f}", geometry)
    found["LST-1"] = lst1_subarray.tel[1].camera.geometry
    return found


def _tap_offsets(lattice):
    return np.argwhere(lattice.kernel_mask) - 1


def _edge_taps(lattice):
    """Taps that are edge neighbours: all six for hex, the four orthogonal for square."""
    return [
        t
        for t, (dr, dc) in enumerate(_tap_offsets(lattice))
        if (dr, dc) != (0, 0) and (lattice.kind == "hex" or abs(dr) + abs(dc) == 1)
    ]


def assert_neighbours_match_ctapipe(lattice, geometry):
    centre = _tap_offsets(lattice).tolist().index([0, 0])
    np.testing.assert_array_equal(lattice.neighbours[:, centre], np.arange(lattice.n_pixels))
    edge = _edge_taps(lattice)
    interior = np.flatnonzero((lattice.neighbours[:, edge] >= 0).all(axis=1))
    assert len(interior) > 0.6 * lattice.n_pixels
    matrix = geometry.neighbor_matrix
    for pixel in interior:
        assert set(lattice.neighbours[pixel, edge]) == set(np.flatnonzero(matrix[pixel])), pixel


def test_real_cameras_kind_taps_and_neighbours(real_geometries):
    names = {g.name for g in real_geometries.values()}
    assert HEX_CAMERAS | SQUARE_CAMERAS <= names | {"LSTcam"}
    for label, geometry in real_geometries.items():
        lattice = Lattice.from_geometry(geometry)
        assert lattice.n_pixels == geometry.n_pixels
        assert lattice.fingerprint == geometry_fingerprint(geometry)
        if geometry.name in HEX_CAMERAS:
            assert lattice.kind == "hex", label
        if geometry.name in SQUARE_CAMERAS:
            assert lattice.kind == "square", label
        assert lattice.neighbours.shape == (geometry.n_pixels, 7 if lattice.kind == "hex" else 9)
        assert (lattice.neighbours >= -1).all() and (lattice.neighbours < geometry.n_pixels).all()
        expected_shape = PixelShape.HEXAGON if lattice.kind == "hex" else PixelShape.SQUARE
        # some old files label square cameras hexagonal; ctapipe's own table is wrong there
        if geometry.pix_type == expected_shape and lattice.regular:
            assert_neighbours_match_ctapipe(lattice, geometry)
        if geometry.name in HEX_CAMERAS | SQUARE_CAMERAS:
            assert lattice.regular, label


def test_lstcam_grid(lst1_subarray):
    lattice = Lattice.from_geometry(lst1_subarray.tel[1].camera.geometry)
    assert lattice.kind == "hex"
    assert lattice.regular
    assert lattice.grid_shape == (55, 55)
    np.testing.assert_array_equal(lattice.kernel_mask, HEX_KERNEL_MASK)
    assert len(np.unique(lattice.grid_index)) == lattice.n_pixels
    assert lattice.grid_index.max() < 55 * 55
    # interior pixels have 6 neighbours + themselves
    n_taps = (lattice.neighbours >= 0).sum(axis=1)
    assert n_taps.max() == 7 and np.median(n_taps) == 7


def test_lst1_in_telescope_frame(lst1_subarray):
    """Same lattice whether pixel positions are in m or deg."""
    from ctapipe.coordinates import TelescopeFrame

    geometry = lst1_subarray.tel[1].camera.geometry
    camera = Lattice.from_geometry(geometry)
    sky = Lattice.from_geometry(geometry.transform_to(TelescopeFrame()))
    assert sky.kind == "hex" and sky.regular
    np.testing.assert_array_equal(np.sort(camera.neighbours, axis=1), np.sort(sky.neighbours, axis=1))


@pytest.mark.parametrize("rotation", [0.0, 13.0, 30.0, 47.0, 100.9])
def test_rotated_hex(rotation):
    geometry = hex_geometry(radius=5, rotation_deg=rotation)
    lattice = Lattice.from_geometry(geometry)
    assert lattice.kind == "hex" and lattice.regular
    assert lattice.n_pixels == 91
    assert_neighbours_match_ctapipe(lattice, geometry)
    # the same pixels are neighbours at any rotation
    reference = Lattice.from_geometry(hex_geometry(radius=5))
    as_sets = lambda lat: [frozenset(row[row >= 0]) for row in lat.neighbours]  # noqa: E731
    assert as_sets(lattice) == as_sets(reference)


@pytest.mark.parametrize("rotation", [0.0, 20.0, 45.0])
def test_rotated_square(rotation):
    geometry = square_geometry(n=9, rotation_deg=rotation)
    lattice = Lattice.from_geometry(geometry)
    assert lattice.kind == "square" and lattice.regular
    assert lattice.grid_shape == (9, 9)
    assert (lattice.neighbours >= 0).sum(axis=1).max() == 9
    if rotation == 0.0:
        assert_neighbours_match_ctapipe(lattice, geometry)
    # ctapipe's square neighbours use an L1 distance, so compare rotations with each other
    reference = Lattice.from_geometry(square_geometry(n=9))
    as_sets = lambda lat: [frozenset(row[row >= 0]) for row in lat.neighbours]  # noqa: E731
    assert as_sets(lattice) == as_sets(reference)


def test_mislabelled_pixel_shape_is_ignored():
    """The lattice kind comes from the positions, not from ``pix_type``."""
    square = square_geometry(n=6)
    mislabelled = _geometry(
        "Mislabelled", square.pix_x.to_value(u.m), square.pix_y.to_value(u.m), 0.0, PixelShape.HEXAGON, 0.01
    )
    assert Lattice.from_geometry(mislabelled).kind == "square"


def test_pooling_halves_and_tables():
    fine = Lattice.from_geometry(hex_geometry(radius=8))
    sizes = [fine.n_pixels]
    lattice = fine
    for level in range(4):
        coarse, table = lattice.pooled()
        assert coarse.level == level + 1
        assert 0.4 < coarse.n_pixels / lattice.n_pixels < 0.6
        assert table.shape == (coarse.n_pixels, lattice.n_taps)
        assert (table < lattice.n_pixels).all() and (table >= -1).all()
        # each coarse pixel pools the neighbourhood of one fine pixel, itself included
        centre = _tap_offsets(lattice).tolist().index([0, 0])
        kept = table[:, centre]
        assert len(np.unique(kept)) == coarse.n_pixels
        np.testing.assert_array_equal(table, lattice.neighbours[kept])
        assert coarse.regular
        assert coarse.kind == "hex"
        sizes.append(coarse.n_pixels)
        lattice = coarse
    # two poolings = the stride-2 hexagonal lattice: 1/4
    assert 0.2 < sizes[2] / sizes[0] < 0.3


def test_pooled_lattice_is_hexagonal_every_second_level():
    fine = Lattice.from_geometry(hex_geometry(radius=8))
    level2, _ = fine.pooled()[0].pooled()
    # interior coarse pixels again have six neighbours
    assert np.median((level2.neighbours >= 0).sum(axis=1)) == 7
    assert level2.pooled()[0] is level2.pooled()[0]  # cached


def test_real_cameras_pool(real_geometries):
    for label, geometry in real_geometries.items():
        lattice = Lattice.from_geometry(geometry)
        coarse, table = lattice.pooled()
        assert coarse.n_pixels > 0 and (table < lattice.n_pixels).all()
        if lattice.regular:
            assert 0.4 < coarse.n_pixels / lattice.n_pixels < 0.6, label


def test_irregular_camera_gets_a_neighbour_table(shared_data):
    """Whipple490 (inner hexagon plus a ring of larger pixels) is not a lattice."""
    geometry = _read_camgeom(shared_data / "camgeom" / "Whipple490.camgeom.fits.gz")
    lattice = Lattice.from_geometry(geometry)
    assert not lattice.regular
    assert lattice.neighbours.shape == (490, 7)
    centre = _tap_offsets(lattice).tolist().index([0, 0])
    np.testing.assert_array_equal(lattice.neighbours[:, centre], np.arange(490))
    coarse, table = lattice.pooled()
    assert coarse.regular and 0 < coarse.n_pixels < 490


def test_dict_round_trip():
    lattice = Lattice.from_geometry(hex_geometry(radius=4, rotation_deg=10))
    data = lattice.to_dict()
    for value in data.values():
        assert isinstance(value, (str, bool, int, list, np.ndarray))
    restored = Lattice.from_dict(data)
    for key, value in data.items():
        np.testing.assert_array_equal(np.asarray(getattr(restored, key)), np.asarray(value))
    assert restored.grid_shape == lattice.grid_shape
    assert restored.fingerprint == lattice.fingerprint
    # pooled levels serialise too
    coarse = Lattice.from_dict(lattice.pooled()[0].to_dict())
    assert coarse.level == 1 and coarse.n_pixels == lattice.pooled()[0].n_pixels


def test_fingerprint_is_stable():
    geometry = hex_geometry(radius=3)
    assert geometry_fingerprint(geometry) == geometry_fingerprint(hex_geometry(radius=3))
    assert geometry_fingerprint(geometry) != geometry_fingerprint(hex_geometry(radius=3, rotation_deg=1))


def test_fingerprint_ignores_reader_noise_but_not_the_layout():
    """Two files' descriptions of one camera differ by micrometres (LST-1: 8 µm between lstchain
    and ctapipe_io_lst); the fingerprint must not, while pitch, order and pixel count still count."""
    geometry = hex_geometry(radius=6, spacing=0.05)
    rng = np.random.default_rng(1)

    def variant(x, y, **kwargs):
        return CameraGeometry(name="variant", pix_id=np.arange(len(x)), pix_x=x, pix_y=y,
                              pix_area=geometry.pix_area[: len(x)], pix_type=geometry.pix_type, **kwargs)

    fingerprint = geometry_fingerprint(geometry)
    for _ in range(20):  # no pixel lands across a rounding edge, whatever the noise
        jitter = rng.uniform(-8e-6, 8e-6, size=(2, geometry.n_pixels)) * u.m
        assert geometry_fingerprint(variant(geometry.pix_x + jitter[0], geometry.pix_y + jitter[1])) == fingerprint
    assert geometry_fingerprint(variant(geometry.pix_x * 1.01, geometry.pix_y * 1.01)) != fingerprint
    order = np.roll(np.arange(geometry.n_pixels), 1)
    assert geometry_fingerprint(variant(geometry.pix_x[order], geometry.pix_y[order])) != fingerprint
    assert geometry_fingerprint(variant(geometry.pix_x[:-1], geometry.pix_y[:-1])) != fingerprint


def test_too_small_geometry_raises():
    from ctapipe_gammalearn.lattice import LatticeError

    tiny = _geometry("Tiny", np.arange(3) * 0.01, np.zeros(3), 0.0, PixelShape.SQUARE, 0.01)
    with pytest.raises(LatticeError, match="Tiny"):
        Lattice.from_geometry(tiny)


def test_models_with_the_first_fingerprint_still_fit_their_camera():
    """Exported models carry the fingerprint of their time: the position-rounding one still matches."""
    import hashlib

    from ctapipe_gammalearn.lattice import fingerprint_fits

    geometry = hex_geometry(radius=4)
    digest = hashlib.sha256(b"m" + np.int64(geometry.n_pixels).tobytes())
    for coordinate in (geometry.pix_x, geometry.pix_y):
        digest.update(np.round(coordinate.to_value(u.m) * 1e3).astype(np.int64).tobytes())
    first = digest.hexdigest()[:16]
    assert first != geometry_fingerprint(geometry)
    assert fingerprint_fits(first, geometry) and fingerprint_fits(geometry_fingerprint(geometry), geometry)
    assert not fingerprint_fits(first, hex_geometry(radius=4, spacing=0.06))
