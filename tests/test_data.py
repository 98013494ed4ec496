"""DL1 -> cache: labels, cuts, errors on bad inputs, split, batches, augmentation."""

import json

import astropy.units as u
import numpy as np
import pytest
import tables
import torch
from astropy.table import Table
from test_data_sim import simulated_dl1

from ctapipe_gammalearn.data import (
    DL1InputError,
    InputFile,
    TrainingQualityQuery,
    balance_classes,
    build_cache,
    class_weights,
    compute_labels,
    split_groups,
)
from ctapipe_gammalearn.training.augment import Augmentation
from ctapipe_gammalearn.training.stream import BatchStream

LST = "LST_LST_LSTCam"
# files with the same LSTCam layout (prod5-like); gamma__gamma_test has another pixel layout
GAMMAS = ["gamma__history_meta_75.dl1.h5", "gamma__test_lasercal_v3.dl1.h5"]
PROTONS = ["proton__31aa856b_proton_run202_za20deg_azm0deg_North_test_layout_test-prod.dl1.h5"]
ANY_LIGHT = [("some light", "hillas_intensity > 0")]


def real_inputs(shared_data):
    dl1 = shared_data / "dl1"
    return [InputFile(dl1 / f, 0) for f in GAMMAS] + [InputFile(dl1 / f, 1) for f in PROTONS]


@pytest.fixture(scope="module")
def real_cache(shared_data, tmp_path_factory):
    query = TrainingQualityQuery(quality_criteria=ANY_LIGHT)
    return build_cache(
        real_inputs(shared_data), tmp_path_factory.mktemp("cache"), LST, query, chunk_size=3, progress=False
    )


def test_labels_geometry():
    """A source at the pointing has zero offset; 1 deg above it has fov_lat = +1 deg;
    impact is core minus telescope position; NaN truth is flagged."""
    table = Table(
        {
            "true_energy": [1.0, 10.0, np.nan] * u.TeV,
            "true_alt": [70.0, 71.0, 70.0] * u.deg,
            "true_az": [0.0, 0.0, 0.0] * u.deg,
            "true_core_x": [100.0, 0.0, 0.0] * u.m,
            "true_core_y": [0.0, -50.0, 0.0] * u.m,
            "pos_x": [20.0, 20.0, 20.0] * u.m,
            "pos_y": [10.0, 10.0, 10.0] * u.m,
            "telescope_pointing_altitude": np.deg2rad([70.0, 70.0, 70.0]) * u.rad,
            "telescope_pointing_azimuth": [0.0, 0.0, 0.0] * u.rad,
        }
    )
    labels, valid = compute_labels(table, particle_class=1)
    np.testing.assert_allclose(labels["log10_energy"][:2], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(labels["fov_offset"][0], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(labels["fov_offset"][1], [0.0, 1.0], atol=1e-3)
    np.testing.assert_allclose(labels["impact"][:2], [[80.0, -10.0], [-20.0, -60.0]], atol=1e-4)
    assert list(valid) == [True, True, False]
    assert labels["particle"].tolist() == [1, 1, 1]


def test_real_cache_matches_dl1(real_cache, shared_data):
    """Cached images are the DL1 images (float16 precision), one row per kept telescope event."""
    from ctapipe.io import TableLoader

    assert real_cache.telescope_type == LST
    assert isinstance(real_cache["image"], np.memmap)
    assert real_cache["image"].dtype == np.float16
    path = shared_data / "dl1" / GAMMAS[1]
    with TableLoader(path, focal_length_choice="EQUIVALENT") as loader:
        table = loader.read_telescope_events_by_type([LST], dl1_images=True, dl1_parameters=True)[LST]
    table = table[table["hillas_intensity"] > 0]
    rows = np.flatnonzero(real_cache["file_index"] == 1)
    assert len(rows) == len(table) > 0
    np.testing.assert_array_equal(real_cache["event_id"][rows], table["event_id"])
    np.testing.assert_allclose(real_cache["image"][rows].astype(np.float32), table["image"], rtol=2e-3, atol=2e-3)
    assert real_cache.meta["n_cut"] > 0 or real_cache.meta["n_read"] == len(real_cache)


def test_cache_reused_and_rebuilt(real_cache, shared_data):
    """Same inputs and cuts reuse the cache folder; other cuts make a new one."""
    again = build_cache(
        real_inputs(shared_data),
        real_cache.path.parent,
        LST,
        TrainingQualityQuery(quality_criteria=ANY_LIGHT),
        progress=False,
    )
    assert again.path == real_cache.path
    stricter = build_cache(
        real_inputs(shared_data),
        real_cache.path.parent,
        LST,
        TrainingQualityQuery(quality_criteria=[("bright", "hillas_intensity > 200")]),
        progress=False,
    )
    assert stricter.path != real_cache.path
    assert 0 < len(stricter) < len(real_cache)
    assert not list(real_cache.path.parent.glob(".*tmp*"))


def test_error_no_images(shared_data, tmp_path):
    params_only = shared_data / "dl1_params_only" / "aict_cta_gammas_diffuse.dl1.h5"
    with pytest.raises(DL1InputError, match="no DL1 images") as err:
        build_cache([InputFile(params_only, 0)], tmp_path, progress=False)
    assert str(params_only.resolve()) in str(err.value)  # the file is named (resolved: it may sit behind a link)
    assert list(tmp_path.iterdir()) == []


def test_error_mixed_geometry(shared_data, tmp_path):
    dl1 = shared_data / "dl1"
    inputs = [InputFile(dl1 / "gamma__gamma_test.dl1.h5", 0), InputFile(dl1 / GAMMAS[0], 0)]
    with pytest.raises(DL1InputError, match="different from"):
        build_cache(inputs, tmp_path, LST, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_error_several_types(shared_data, tmp_path):
    with pytest.raises(DL1InputError, match="--telescope-type: LST_LST_LSTCam, MST_MST_NectarCam"):
        build_cache(real_inputs(shared_data)[:1], tmp_path, progress=False)


def test_error_nothing_after_cuts(shared_data, tmp_path):
    query = TrainingQualityQuery(quality_criteria=[("impossible", "hillas_intensity > 1e12")])
    with pytest.raises(DL1InputError, match="no LST_LST_LSTCam events left after cuts"):
        build_cache(real_inputs(shared_data), tmp_path, LST, query, progress=False)
    assert list(tmp_path.iterdir()) == []  # no partial cache left


def test_nan_labels_skipped(tmp_path_factory, tmp_path):
    """Events with NaN true energy are skipped and counted, not an error."""
    gammas, _ = simulated_dl1(tmp_path_factory)
    broken = tmp_path / "nan_energy.dl1.h5"
    broken.write_bytes(gammas[0].read_bytes())
    with tables.open_file(broken, "a") as h5:
        shower = h5.root.simulation.event.subarray.shower
        energy = shower.col("true_energy")
        energy[::3] = np.nan
        shower.modify_column(colname="true_energy", column=energy)
    cache = build_cache([InputFile(broken, 0)], tmp_path / "cache", progress=False)
    clean = build_cache([InputFile(gammas[0], 0)], tmp_path / "cache", progress=False)
    assert cache.meta["n_nan_labels"] > 0
    assert len(cache) == len(clean) - cache.meta["n_nan_labels"]
    assert np.isfinite(cache["log10_energy"]).all()
    meta = json.loads((cache.path / "meta.json").read_text())
    assert meta["n_nan_labels"] == cache.meta["n_nan_labels"]


def test_split_keeps_groups_together():
    file_index = np.repeat(np.arange(6), 10)
    obs_id = np.tile(np.repeat([1, 2], 5), 6)
    particle = np.repeat([0, 0, 0, 1, 1, 1], 10)
    for by, key in [("file", file_index), ("obs", file_index * 10 + obs_id)]:
        train, val = split_groups(file_index, obs_id, particle, 0.3, by=by, seed=3)
        assert len(np.intersect1d(train, val)) == 0
        assert len(train) + len(val) == 60
        assert len(np.intersect1d(key[train], key[val])) == 0  # no group on both sides
        assert set(particle[val]) == {0, 1}
        again = split_groups(file_index, obs_id, particle, 0.3, by=by, seed=3)
        np.testing.assert_array_equal(again[1], val)
    # a class with one file stays in training
    _, val = split_groups(file_index[:40], obs_id[:40], np.repeat([0, 0, 0, 1], 10), 0.3, seed=0)
    assert set(particle[val]) == {0}


def test_class_balance():
    particle = np.array([0] * 30 + [1] * 10)
    balanced = balance_classes(np.arange(40), particle, seed=1)
    assert np.bincount(particle[balanced]).tolist() == [10, 10]
    weights = class_weights(particle)
    np.testing.assert_allclose(weights[particle].mean(), 1.0)
    assert weights[1] == pytest.approx(3 * weights[0])


def test_stream_order_ranks_and_augmentation(real_cache):
    n = len(real_cache)
    idx = np.arange(n)
    stream = BatchStream(real_cache, idx, batch_size=4, seed=5)
    stream.set_epoch(1)
    first = np.concatenate([b["image"][:, :3].numpy() for b in stream])
    again = BatchStream(real_cache, idx, batch_size=4, seed=5)
    again.set_epoch(1)
    np.testing.assert_array_equal(first, np.concatenate([b["image"][:, :3].numpy() for b in again]))
    stream.set_epoch(2)
    assert not np.array_equal(first, np.concatenate([b["image"][:, :3].numpy() for b in stream]))

    batch = next(iter(stream))
    assert batch["image"].dtype == torch.float32 and batch["particle"].dtype == torch.int64
    assert set(batch) >= {"image", "peak_time", "log10_energy", "fov_offset", "impact", "particle", "weight"}

    # two DDP ranks see disjoint halves (up to one padded row) covering everything
    seen = []
    for rank in (0, 1):
        part = BatchStream(real_cache, idx, batch_size=4, seed=5, rank=rank, world_size=2)
        part.set_epoch(1)
        seen.append(np.concatenate([b["log10_energy"].numpy() for b in part]))
        assert len(seen[-1]) == -(-n // 2)
    rows = [part.indices[list(BatchStream(real_cache, idx, 4, seed=5, rank=r, world_size=2).sampler)] for r in (0, 1)]
    assert set(rows[0]) | set(rows[1]) == set(idx)
    assert len(set(rows[0]) & set(rows[1])) <= n % 2

    # augmentation: off by default, reproducible when on, changes images and times
    plain = next(iter(BatchStream(real_cache, idx, batch_size=4, seed=5, shuffle=False)))
    aug = Augmentation(nsb_pe=2.0, time_jitter_ns=1.0)
    noisy = [next(iter(BatchStream(real_cache, idx, 4, seed=5, shuffle=False, augmentation=aug))) for _ in range(2)]
    torch.testing.assert_close(noisy[0]["image"], noisy[1]["image"])
    diff = (noisy[0]["image"] - plain["image"]).numpy()
    assert 1.0 < diff.std() < 2.0  # Poisson(2) has std sqrt(2)
    assert abs(diff.mean()) < 0.1  # mean-subtracted
    assert 0.8 < (noisy[0]["peak_time"] - plain["peak_time"]).std() < 1.2
