"""DL1 files -> a compact on-disk cache of memory-mapped arrays.

Epochs read the cache, never HDF5. The cache is built chunk by chunk (memory
bounded by ``chunk_size`` subarray events, not by the dataset), written to a
temporary folder and renamed when complete, and keyed by a hash of the inputs
(path, size, mtime, class), the cuts, the telescope type and the stored dtype:
changing any of them builds a new cache.

Layout of a cache folder: ``meta.json`` plus one raw little-endian ``<name>.bin``
per column, opened with `numpy.memmap` (shapes and dtypes in ``meta.json``).
"""

import contextlib
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
from ctapipe.io import TableLoader
from tqdm.auto import tqdm

from ..atomic import atomic_dir
from ..io.lstchain import LSTChainDL1File
from .inputs import LSTCHAIN, DL1InputError, check_inputs, dl1_format
from .labels import compute_labels

__all__ = ["EventCache", "build_cache", "cache_key", "CACHE_FORMAT"]

CACHE_FORMAT = 1
META_NAME = "meta.json"


def _columns(n_pixels, pixel_dtype):
    """name -> (dtype, per-event shape) of every cached column."""
    return {
        "image": (pixel_dtype, (n_pixels,)),
        "peak_time": (pixel_dtype, (n_pixels,)),
        "log10_energy": ("float32", ()),
        "fov_offset": ("float32", (2,)),
        "impact": ("float32", (2,)),
        "particle": ("int8", ()),
        "weight": ("float32", ()),
        "obs_id": ("int64", ()),
        "event_id": ("int64", ()),
        "tel_id": ("int16", ()),
        "file_index": ("int16", ()),
        "hillas_intensity": ("float32", ()),
    }


def cache_key(inputs, telescope_type, cuts_key, pixel_dtype, labelled=True) -> str:
    digest = hashlib.sha256()
    parts = [f"format={CACHE_FORMAT}", telescope_type, cuts_key, str(pixel_dtype)]
    for part in parts if labelled else [*parts, "unlabelled"]:
        digest.update(part.encode() + b"\0")
    for item in inputs:
        digest.update(item.key().encode() + b"\0")
    return digest.hexdigest()[:20]


class EventCache:
    """Read-only view of a built cache: ``cache[name]`` is a memory-mapped array."""

    def __init__(self, path):
        self.path = Path(path)
        self.meta = json.loads((self.path / META_NAME).read_text())
        self.n_events = int(self.meta["n_events"])
        self._arrays = {}
        for name, (dtype, shape) in self.meta["columns"].items():
            full_shape = (self.n_events, *shape)
            if self.n_events == 0:
                self._arrays[name] = np.zeros(full_shape, dtype=dtype)
            else:
                self._arrays[name] = np.memmap(self.path / f"{name}.bin", dtype=dtype, mode="r", shape=full_shape)

    def __len__(self):
        return self.n_events

    def __getitem__(self, name) -> np.ndarray:
        return self._arrays[name]

    @property
    def columns(self):
        return tuple(self._arrays)

    @property
    def n_pixels(self) -> int:
        return int(self.meta["n_pixels"])

    @property
    def telescope_type(self) -> str:
        return self.meta["telescope_type"]

    @property
    def geometry_fingerprint(self) -> str:
        return self.meta["geometry_fingerprint"]


def _read_chunks(path, telescope_type, chunk_size, simulated=True):
    """Telescope-event tables (TableLoader's columns) of one type, of a ctapipe or lstchain file."""
    if dl1_format(path) == LSTCHAIN:
        with LSTChainDL1File(path) as source:
            yield from source.iter_chunks(telescope_type, chunk_size, images=True, simulated=simulated)
        return
    with warnings.catch_warnings():
        # old files miss optional metadata; ctapipe warns once per table
        warnings.simplefilter("ignore")
        with TableLoader(path, focal_length_choice="EQUIVALENT") as loader:
            chunks = loader.read_telescope_events_by_type_chunked(
                chunk_size,
                telescopes=[telescope_type],
                dl1_images=True,
                dl1_parameters=True,
                simulated=simulated,
                true_parameters=False,
                instrument=True,
                pointing=True,
                observation_info=False,
            )
            for chunk in chunks:
                table = chunk.data.get(telescope_type)
                if table is not None and len(table) > 0:
                    yield table


def build_cache(
    inputs,
    cache_dir,
    telescope_type=None,
    quality_query=None,
    chunk_size=1000,
    pixel_dtype="float16",
    progress=True,
    log=None,
    labelled=True,
) -> EventCache:
    """Build (or reuse) the cache of ``inputs`` (a list of `InputFile`) under ``cache_dir``.

    Rows failing ``quality_query`` (a `TrainingQualityQuery`) are dropped; rows
    with non-finite labels are skipped and counted in ``meta["n_nan_labels"]``.
    Raises `DL1InputError` when nothing is left. ``labelled=False`` (unlabelled
    target-domain files, e.g. observed runs): no simulated truth is read or
    required; the label columns hold NaN and ``particle`` -1.
    """
    telescope_type, geometry, fingerprint = check_inputs(inputs, telescope_type, labelled)
    cuts_key = quality_query.criteria_key() if quality_query is not None else ""
    final = Path(cache_dir) / cache_key(inputs, telescope_type, cuts_key, pixel_dtype, labelled)
    if (final / META_NAME).is_file():
        if log:
            log.info("reusing cache %s", final)
        return EventCache(final)

    columns = _columns(geometry.n_pixels, pixel_dtype)
    try:
        with atomic_dir(final, overwrite=False) as tmp:
            counts, per_file = _write_columns(
                tmp, inputs, columns, telescope_type, quality_query, chunk_size, progress, labelled
            )
            n_events = sum(entry["n_events"] for entry in per_file)
            if n_events == 0:
                raise _nothing_left(inputs, telescope_type, counts)
            meta = _meta(n_events, geometry, fingerprint, telescope_type, cuts_key, per_file, columns, counts)
            (tmp / META_NAME).write_text(json.dumps(meta, indent=1))
    except FileExistsError:
        # another process built the same cache meanwhile: use theirs
        if not (final / META_NAME).is_file():
            raise
        return EventCache(final)
    if log:
        log.info(
            "cached %d %s events in %s (%d cut, %d NaN labels skipped)",
            n_events, telescope_type, final, counts["n_cut"], counts["n_nan_labels"],
        )
    return EventCache(final)


def _write_columns(directory, inputs, columns, telescope_type, quality_query, chunk_size, progress, labelled=True):
    """Append the kept rows of every file to one raw ``<name>.bin`` per column.

    Returns ``(counts, per_file)``: the rows read, cut and skipped for NaN
    labels, and one ``{"path", "particle_class", "n_events"}`` per file.
    """
    counts = {"n_read": 0, "n_cut": 0, "n_nan_labels": 0}
    per_file = []
    with contextlib.ExitStack() as stack:
        handles = {name: stack.enter_context(open(directory / f"{name}.bin", "wb")) for name in columns}
        bar = stack.enter_context(tqdm(total=len(inputs), desc="caching DL1", unit="file", disable=not progress))
        for file_index, item in enumerate(inputs):
            n_file = 0
            # closed at once on an error, not whenever the generator is collected
            with contextlib.closing(_read_chunks(item.path, telescope_type, chunk_size, labelled)) as chunks:
                for table in chunks:
                    rows = _kept_rows(table, item, file_index, quality_query, counts, labelled)
                    _append_rows(handles, columns, rows)
                    n_file += len(rows["event_id"])
            per_file.append({"path": str(item.path), "particle_class": item.particle_class, "n_events": n_file})
            bar.update(1)
    return counts, per_file


def _kept_rows(table, item, file_index, quality_query, counts, labelled=True):
    """Column name -> values of the rows passing the cuts with finite labels; updates ``counts``."""
    keep = quality_query.mask(table) if quality_query is not None else np.ones(len(table), bool)
    try:
        labels, valid = compute_labels(table, item.particle_class) if labelled else _no_labels(len(table))
    except KeyError as err:
        raise DL1InputError(f"{item.path}: cannot compute labels, {err}") from None
    counts["n_read"] += len(table)
    counts["n_cut"] += int((~keep).sum())
    counts["n_nan_labels"] += int((keep & ~valid).sum())
    keep &= valid
    n_keep = int(keep.sum())
    rows = {
        "image": np.asarray(table["image"], dtype=np.float32)[keep],
        "peak_time": np.asarray(table["peak_time"], dtype=np.float32)[keep],
        "weight": np.ones(n_keep, np.float32),
        "obs_id": np.asarray(table["obs_id"])[keep],
        "event_id": np.asarray(table["event_id"])[keep],
        "tel_id": np.asarray(table["tel_id"])[keep],
        "file_index": np.full(n_keep, file_index),
        "hillas_intensity": np.asarray(table["hillas_intensity"], dtype=np.float32)[keep]
        if "hillas_intensity" in table.colnames
        else np.full(n_keep, np.nan, np.float32),
    }
    rows.update({name: value[keep] for name, value in labels.items()})
    return rows


def _no_labels(n):
    """Label columns of unlabelled (target-domain) rows: NaN, particle -1, all rows valid."""
    labels = {
        "log10_energy": np.full(n, np.nan, np.float32),
        "fov_offset": np.full((n, 2), np.nan, np.float32),
        "impact": np.full((n, 2), np.nan, np.float32),
        "particle": np.full(n, -1, np.int8),
    }
    return labels, np.ones(n, bool)


def _append_rows(handles, columns, rows):
    for name, (dtype, _) in columns.items():
        np.ascontiguousarray(rows[name], dtype=_stored_dtype(dtype)).tofile(handles[name])


def _stored_dtype(dtype):
    """Little-endian on every machine: the cache may be read elsewhere."""
    return np.dtype(dtype).newbyteorder("<")


def _nothing_left(inputs, telescope_type, counts):
    return DL1InputError(
        f"{', '.join(str(i.path) for i in inputs)}: no {telescope_type} events left after cuts "
        f"({counts['n_read']} read, {counts['n_cut']} cut, {counts['n_nan_labels']} with NaN labels)"
    )


def _meta(n_events, geometry, fingerprint, telescope_type, cuts_key, per_file, columns, counts):
    return {
        "format": CACHE_FORMAT,
        "n_events": n_events,
        "n_pixels": int(geometry.n_pixels),
        "telescope_type": telescope_type,
        "camera_name": geometry.name,
        "geometry_fingerprint": fingerprint,
        "cuts": cuts_key,
        "files": per_file,
        "columns": {name: [_stored_dtype(dtype).str, list(shape)] for name, (dtype, shape) in columns.items()},
        **counts,
    }
