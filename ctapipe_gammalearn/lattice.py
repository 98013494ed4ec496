"""CameraGeometry -> lattice: what an exact convolution on the camera needs.

A camera whose pixels sit on a hexagonal or square lattice (at any rotation)
gets integer axial coordinates ``(row, col)``. In those coordinates a hexagonal
lattice is a square grid on which the six neighbours of a cell are the 3x3
window without two opposite corners, so one ``conv2d`` with a 7-tap mask is an
exact hexagonal convolution. Cameras that do not fit a lattice still get a
neighbour table, for the gather implementation.

numpy only: the runtime imports this module (for the fingerprint) without torch.
"""

import hashlib
from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "geometry_fingerprint",
    "fingerprint_fits",
    "Lattice",
    "LatticeError",
    "HEX_KERNEL_MASK",
    "SQUARE_KERNEL_MASK",
]

#: taps of a radius-1 kernel in axial (row, col) coordinates; tap (i, j) reads
#: the cell at (row + i - 1, col + j - 1), like ``torch.nn.functional.conv2d``
HEX_KERNEL_MASK = np.array([[0, 1, 1], [1, 1, 1], [1, 1, 0]], dtype=bool)
SQUARE_KERNEL_MASK = np.ones((3, 3), dtype=bool)


class LatticeError(ValueError):
    """A geometry that cannot be described as a lattice."""


def geometry_fingerprint(geometry) -> str:
    """Short stable hash of the pixel layout: pixel order, lattice coordinates, pitch and rotation.

    Two descriptions of one camera differ by float noise (LST-1 in lstchain's files and in
    ctapipe_io_lst: up to 8 µm), and rounding every pixel position would split some pixels
    across a rounding edge. So the hash holds what that noise cannot move: the integer
    lattice coordinates of each pixel (the ``Lattice``'s own), the lattice kind, the pitch
    (0.1 mm, or 1e-4 deg in the telescope frame) and the lattice rotation (0.1 deg).
    """
    pos = _pixel_positions(geometry)
    if geometry.pix_x.unit.physical_type == "length":
        pitch_unit, pitch_step, tag = u.m, 1e-4, b"m"
    else:
        pitch_unit, pitch_step, tag = u.deg, 1e-4, b"deg"
    pos = pos * geometry.pix_x.unit.to(pitch_unit)
    digest = hashlib.sha256()
    digest.update(tag)
    digest.update(np.int64(len(pos)).tobytes())
    if len(pos) >= 7:
        kind, spacing, angle = _lattice_kind_and_axes(pos)
        coords = _axial_coordinates(pos, kind, spacing, angle)
        symmetry = 60.0 if kind == "hex" else 90.0
        rotation = round(float(np.degrees(angle)) % symmetry, 1) % symmetry
        digest.update(kind.encode())
        digest.update(np.int64([round(spacing / pitch_step), round(rotation * 10)]).tobytes())
        digest.update(coords.astype(np.int64).tobytes())
    else:  # too few pixels for a lattice: the rounded positions
        digest.update(np.round(pos / pitch_step).astype(np.int64).tobytes())
    return digest.hexdigest()[:16]


def _legacy_fingerprint(geometry) -> str:
    """The first fingerprint, of models exported before it changed: positions rounded to 1 mm (1e-4 deg)."""
    x, y = geometry.pix_x, geometry.pix_y
    length = x.unit.physical_type == "length"
    unit, scale, tag = (u.m, 1e3, b"m") if length else (u.deg, 1e4, b"deg")
    digest = hashlib.sha256()
    digest.update(tag)
    digest.update(np.int64(len(x)).tobytes())
    digest.update(np.round(x.to_value(unit) * scale).astype(np.int64).tobytes())
    digest.update(np.round(y.to_value(unit) * scale).astype(np.int64).tobytes())
    return digest.hexdigest()[:16]


def fingerprint_fits(fingerprint, geometry) -> bool:
    """Whether a model card's (or checkpoint's) fingerprint is that of ``geometry``; models
    exported with the older, position-rounding fingerprint still match their camera."""
    return fingerprint in (geometry_fingerprint(geometry), _legacy_fingerprint(geometry))


def _pixel_positions(geometry):
    """Pixel centres as plain (n, 2) float64, in the geometry's own unit."""
    unit = geometry.pix_x.unit
    return np.column_stack([geometry.pix_x.to_value(unit), geometry.pix_y.to_value(unit)])


def _fov_positions(geometry):
    """Pixel centres in the telescope frame, (n, 2) (fov_lon, fov_lat) in deg.

    None for a camera-frame geometry without a focal length (nothing then ties
    its metres to the sky).
    """
    if geometry.pix_x.unit.physical_type == "angle":
        sky = geometry
    else:
        focal_length = getattr(geometry.frame, "focal_length", None)
        if focal_length is None or not np.all(np.isfinite(u.Quantity(focal_length).value)):
            return None
        from ctapipe.coordinates import TelescopeFrame

        sky = geometry.transform_to(TelescopeFrame())
    return np.column_stack([sky.pix_x.to_value(u.deg), sky.pix_y.to_value(u.deg)])


def _lattice_kind_and_axes(pos):
    """Lattice kind from the number of equidistant nearest neighbours, its
    spacing and orientation (angle of the first lattice axis, radians).

    The pixel shape stored in files is not trusted: some files label square
    cameras as hexagonal.
    """
    tree = cKDTree(pos)
    dist, idx = tree.query(pos, k=min(7, len(pos)))
    spacing = float(np.median(dist[:, 1]))
    close = dist[:, 1:] < 1.2 * spacing
    n_close = close.sum(axis=1)
    kind = "hex" if np.median(n_close) >= 5 else "square"
    order = 6 if kind == "hex" else 4
    rows, cols = np.nonzero(close)
    vec = pos[idx[:, 1:][rows, cols]] - pos[rows]
    angles = np.arctan2(vec[:, 1], vec[:, 0])
    # average direction modulo the lattice symmetry
    phase = np.angle(np.mean(np.exp(1j * order * angles)))
    return kind, spacing, phase / order


def _cluster_rank(values, tolerance):
    """Integer rank of 1-D clusters (values closer than tolerance share one)."""
    order = np.argsort(values)
    jumps = np.diff(values[order]) > tolerance
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.concatenate([[0], np.cumsum(jumps)])
    return rank


def _axial_coordinates(pos, kind, spacing, angle):
    """Integer (row, col) per pixel, the pixel nearest the centroid at (0, 0)."""
    c, s = np.cos(-angle), np.sin(-angle)
    centre = np.argmin(np.sum((pos - pos.mean(axis=0)) ** 2, axis=1))
    rel = (pos - pos[centre]) @ np.array([[c, s], [-s, c]])
    row_pitch = spacing * (np.sqrt(3) / 2 if kind == "hex" else 1.0)
    # ranks instead of rounding: robust to gaps between camera modules
    row = _cluster_rank(rel[:, 1], 0.5 * row_pitch)
    row -= row[centre]
    if kind == "hex":
        # axial: x = (col + row / 2) * spacing
        col = np.round(rel[:, 0] / spacing - row / 2).astype(np.int64)
    else:
        col = _cluster_rank(rel[:, 0], 0.5 * spacing)
        col -= col[centre]
    return np.column_stack([row, col])


def _tap_offsets(kernel_mask):
    """(k, 2) (drow, dcol) of the active taps, in row-major tap order."""
    i, j = np.nonzero(kernel_mask)
    return np.column_stack([i - 1, j - 1])


def _grid_tables(coords):
    rmin, cmin = coords.min(axis=0)
    shape = tuple(int(v) for v in coords.max(axis=0) - (rmin, cmin) + 1)
    grid_index = (coords[:, 0] - rmin) * shape[1] + (coords[:, 1] - cmin)
    return shape, grid_index.astype(np.int64)


def _neighbours_from_grid(coords, grid_shape, grid_index, kernel_mask):
    """Neighbour table by looking up each tap's cell; -1 where no pixel."""
    cell_pixel = np.full(grid_shape[0] * grid_shape[1], -1, dtype=np.int64)
    cell_pixel[grid_index] = np.arange(len(coords))
    rmin, cmin = coords.min(axis=0)
    out = np.full((len(coords), int(kernel_mask.sum())), -1, dtype=np.int64)
    for t, (dr, dc) in enumerate(_tap_offsets(kernel_mask)):
        r = coords[:, 0] + dr - rmin
        c = coords[:, 1] + dc - cmin
        inside = (r >= 0) & (r < grid_shape[0]) & (c >= 0) & (c < grid_shape[1])
        out[inside, t] = cell_pixel[r[inside] * grid_shape[1] + c[inside]]
    return out


def _neighbours_from_positions(pos, kind, spacing, angle, kernel_mask):
    """Neighbour table for layouts off a lattice: nearest pixel to each tap's
    expected position, if closer than half a spacing."""
    basis = np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]]) if kind == "hex" else np.eye(2)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    tree = cKDTree(pos)
    out = np.full((len(pos), int(kernel_mask.sum())), -1, dtype=np.int64)
    for t, (dr, dc) in enumerate(_tap_offsets(kernel_mask)):
        step = rot @ (spacing * (dc * basis[0] + dr * basis[1]))
        dist, idx = tree.query(pos + step)
        ok = dist < 0.5 * spacing
        out[ok, t] = idx[ok]
    return out


@dataclass(frozen=True, eq=False)
class Lattice:
    """Pixels of one camera (or of a pooled level of it) on an axial grid.

    ``coords`` (n_pixels, 2) are integer (row, col); ``grid_index`` is the flat
    index of each pixel in the row-major ``grid_shape`` grid; ``neighbours``
    (n_pixels, k) lists, per pixel, the pixel read by each active tap of
    ``kernel_mask`` (row-major tap order), -1 where there is none. ``regular``
    means every pixel has its own grid cell, so the grid convolution is exact.
    ``level`` counts the poolings from the camera (0). ``fov_positions``
    (n_pixels, 2) are the pixel centres in the telescope frame (deg), where the
    geometry knows its focal length; pooled levels do not carry them.
    """

    kind: str
    camera_name: str
    fingerprint: str
    coords: np.ndarray
    grid_shape: tuple
    grid_index: np.ndarray
    kernel_mask: np.ndarray
    neighbours: np.ndarray
    regular: bool
    level: int = 0
    fov_positions: object = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_pixels(self) -> int:
        return len(self.coords)

    @property
    def n_taps(self) -> int:
        return int(self.kernel_mask.sum())

    @property
    def n_cells(self) -> int:
        return int(self.grid_shape[0] * self.grid_shape[1])

    @property
    def cell_pixel(self) -> np.ndarray:
        """(n_cells,) pixel index of each grid cell, -1 for empty cells."""
        out = np.full(self.n_cells, -1, dtype=np.int64)
        out[self.grid_index] = np.arange(self.n_pixels)
        return out

    @classmethod
    def from_geometry(cls, geometry) -> "Lattice":
        """Lattice of a ctapipe ``CameraGeometry`` (hex or square, any rotation)."""
        pos = _pixel_positions(geometry)
        if len(pos) < 7:
            raise LatticeError(f"camera {geometry.name}: too few pixels ({len(pos)}) for a lattice")
        kind, spacing, angle = _lattice_kind_and_axes(pos)
        coords = _axial_coordinates(pos, kind, spacing, angle)
        mask = HEX_KERNEL_MASK if kind == "hex" else SQUARE_KERNEL_MASK
        grid_shape, grid_index = _grid_tables(coords)
        regular = len(np.unique(grid_index)) == len(grid_index)
        if regular:
            neighbours = _neighbours_from_grid(coords, grid_shape, grid_index, mask)
        else:
            neighbours = _neighbours_from_positions(pos, kind, spacing, angle, mask)
        return cls(
            kind=kind,
            camera_name=str(geometry.name),
            fingerprint=geometry_fingerprint(geometry),
            coords=coords,
            grid_shape=grid_shape,
            grid_index=grid_index,
            kernel_mask=mask.copy(),
            neighbours=neighbours,
            regular=bool(regular),
            fov_positions=_fov_positions(geometry),
        )

    def cartesian(self) -> np.ndarray:
        """Pixel centres in lattice units (neighbour distance 1), (n, 2) float64.

        The geometry's positions up to a rotation, a reflection and a scale:
        a fallback where ``fov_positions`` is unknown.
        """
        row, col = self.coords[:, 0].astype(np.float64), self.coords[:, 1].astype(np.float64)
        if self.kind == "hex":
            return np.column_stack([col + row / 2, row * np.sqrt(3) / 2])
        return np.column_stack([col, row])

    def pooled(self):
        """Coarser lattice with about half the pixels, and the pooling table.

        Keeps the pixels with an even column (even pooling level) or an even
        row (odd level), so two poolings make the stride-2 lattice (1/4), which
        is again hexagonal (or square); on the intermediate level the kernel
        mask still selects the six (eight) nearest coarse neighbours. Each
        coarse pixel pools the kernel neighbourhood of the fine pixel it keeps.

        Returns ``(coarse, table)``: ``table`` (coarse.n_pixels, k) holds fine
        pixel indices, -1 padded.
        """
        if "pooled" in self._cache:
            return self._cache["pooled"]
        axis = 1 if self.level % 2 == 0 else 0  # col first, then row
        keep = np.nonzero(self.coords[:, axis] % 2 == 0)[0]
        coords = self.coords[keep].copy()
        coords[:, axis] //= 2
        grid_shape, grid_index = _grid_tables(coords)
        # off-lattice cameras: one coarse pixel per cell, so coarse levels are regular
        _, first = np.unique(grid_index, return_index=True)
        keep, coords = keep[np.sort(first)], coords[np.sort(first)]
        grid_shape, grid_index = _grid_tables(coords)
        neighbours = _neighbours_from_grid(coords, grid_shape, grid_index, self.kernel_mask)
        coarse = Lattice(
            kind=self.kind,
            camera_name=self.camera_name,
            fingerprint=self.fingerprint,
            coords=coords,
            grid_shape=grid_shape,
            grid_index=grid_index,
            kernel_mask=self.kernel_mask.copy(),
            neighbours=neighbours,
            regular=True,
            level=self.level + 1,
        )
        table = self.neighbours[keep]
        table.setflags(write=False)  # cached and shared
        self._cache["pooled"] = (coarse, table)
        return coarse, table

    def to_dict(self) -> dict:
        """Plain types and numpy arrays, for checkpoints."""
        data = {
            "kind": self.kind,
            "camera_name": self.camera_name,
            "fingerprint": self.fingerprint,
            "coords": np.asarray(self.coords),
            "grid_shape": [int(v) for v in self.grid_shape],
            "grid_index": np.asarray(self.grid_index),
            "kernel_mask": np.asarray(self.kernel_mask),
            "neighbours": np.asarray(self.neighbours),
            "regular": bool(self.regular),
            "level": int(self.level),
        }
        if self.fov_positions is not None:
            data["fov_positions"] = np.asarray(self.fov_positions)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Lattice":
        return cls(
            kind=str(data["kind"]),
            camera_name=str(data["camera_name"]),
            fingerprint=str(data["fingerprint"]),
            coords=np.asarray(data["coords"], dtype=np.int64),
            grid_shape=tuple(int(v) for v in data["grid_shape"]),
            grid_index=np.asarray(data["grid_index"], dtype=np.int64),
            kernel_mask=np.asarray(data["kernel_mask"], dtype=bool),
            neighbours=np.asarray(data["neighbours"], dtype=np.int64),
            regular=bool(data["regular"]),
            level=int(data.get("level", 0)),
            fov_positions=None
            if data.get("fov_positions") is None
            else np.asarray(data["fov_positions"], dtype=np.float64),
        )

    def __repr__(self):
        return (
            f"Lattice(kind={self.kind!r}, camera_name={self.camera_name!r}, n_pixels={self.n_pixels},"
            f" grid_shape={self.grid_shape}, regular={self.regular}, level={self.level})"
        )
