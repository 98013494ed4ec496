"""lstchain DL1 files (../shared/data/lstchain_dl1): reading, parameters against ctapipe's
ImageProcessor, noise, training inputs, apply and the benchmark on the resulting DL2.

Torch-free except the apply/benchmark tests, which export a tiny model (they skip without torch).
"""

import astropy.units as u
import numpy as np
import pytest
import tables
from astropy.coordinates import AltAz, SkyCoord
from astropy.time import Time
from ctapipe.core import run_tool
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import TableLoader

from ctapipe_gammalearn.data import InputFile, TrainingQualityQuery, build_cache
from ctapipe_gammalearn.data.inputs import CTAPIPE, LSTCHAIN, DL1InputError, check_target_inputs, dl1_format
from ctapipe_gammalearn.data.noise import estimate_pixel_noise, nominal_simulator_noise
from ctapipe_gammalearn.evaluation.observation import observed_events
from ctapipe_gammalearn.io import LST_SITE, LSTChainDL1File, read_lstchain_subarray, write_ctapipe_dl1
from ctapipe_gammalearn.io.lstchain_cleaning import image_parameters
from ctapipe_gammalearn.lattice import geometry_fingerprint

REAL = "lst1_observed_run_2021-03_17events.dl1.h5"
GAMMA = "mc_gamma_17events.dl1.h5"
PROTON = "mc_proton_17events.dl1.h5"
LST = "LST_LST_LSTCam"
#: the real run is a wobble observation of Mrk 501 (ICRS)
MRK501 = SkyCoord(253.4676 * u.deg, 39.7602 * u.deg)


@pytest.fixture(scope="module")
def lstchain_dir(shared_data):
    folder = shared_data / "lstchain_dl1"
    if not folder.is_dir():
        pytest.skip(f"lstchain DL1 files not found at {folder}")
    return folder


def read(path, **kwargs):
    with LSTChainDL1File(path) as source:
        return source.subarray, source.read(LST, **kwargs)


def test_subarray_and_format(lstchain_dir, shared_data, lst1_subarray):
    real, _ = read(lstchain_dir / REAL, images=False)
    mc, _ = read(lstchain_dir / GAMMA, images=False)
    assert sorted(real.tel) == [1] and len(mc.tel) == 6  # 4 LSTs and the 2 MAGICs of the production
    for subarray in (real, mc):
        geometry = subarray.tel[1].camera.geometry
        assert str(subarray.tel[1]) == LST and geometry.n_pixels == 1855
        assert geometry.frame.focal_length == 28 * u.m  # only the equivalent one is stored
        assert subarray.reference_location == LST_SITE
    # the real run's camera is LST-1's as ctapipe_io_lst describes it (the simulator's camera)
    assert geometry_fingerprint(real.tel[1].camera.geometry) == geometry_fingerprint(
        lst1_subarray.tel[1].camera.geometry
    )
    assert dl1_format(lstchain_dir / REAL) == LSTCHAIN
    assert dl1_format(shared_data / "dl1" / "gamma__test_lasercal_v3.dl1.h5") == CTAPIPE


def test_subarray_of_ctapipe_written_tables(shared_data):
    """lstchain 0.10 writes its configuration with ctapipe 0.19, in the table versions of
    today's ctapipe (layout 2.0, optics 4.0, readout 3.0): the same code reads those."""
    path = shared_data / "dl1" / "gamma__test_lasercal_v3.dl1.h5"
    with tables.open_file(path) as h5:
        subarray = read_lstchain_subarray(h5, "EFFECTIVE")
    assert subarray == SubarrayDescription.from_hdf(path, focal_length_choice="EFFECTIVE")
    assert subarray.reference_location == SubarrayDescription.from_hdf(path).reference_location


def test_neither_format_is_one_line_error(tmp_path):
    path = tmp_path / "other.h5"
    with tables.open_file(path, "w") as h5:
        h5.create_array("/", "x", np.arange(3))
    with pytest.raises(DL1InputError) as err:
        dl1_format(path)
    message = str(err.value)
    assert str(path) in message and "neither ctapipe nor lstchain DL1" in message and "\n" not in message


def _values(rows, name, unit):
    return np.array([u.Quantity(r[name]).to_value(unit) if unit is not None else r[name] for r in rows], float)


#: parameter -> unit; agreement to float rounding (the metre-degree conversion undoes lstchain's arctan)
EXACT = {
    "hillas_intensity": None,
    "hillas_fov_lon": u.deg,
    "hillas_fov_lat": u.deg,
    "hillas_r": u.deg,
    "hillas_phi": u.deg,
    "hillas_length": u.deg,
    "hillas_width": u.deg,
    "hillas_psi": u.deg,
    "hillas_skewness": None,
    "hillas_kurtosis": None,
    "leakage_intensity_width_1": None,
    "leakage_intensity_width_2": None,
    "leakage_pixels_width_1": None,
    "leakage_pixels_width_2": None,
    "morphology_n_pixels": None,
}


@pytest.mark.parametrize("name", [REAL, GAMMA, PROTON])
def test_parameters_agree_with_image_processor(name, lstchain_dir):
    subarray, table = read(lstchain_dir / name)
    recomputed = image_parameters(subarray, table)
    parametrised = np.isfinite(np.asarray(table["hillas_intensity"]))
    assert parametrised.sum() >= 13
    for column, unit in EXACT.items():
        ours = u.Quantity(table[column]).to_value(unit) if unit is not None else np.asarray(table[column], float)
        theirs = _values(recomputed, column, unit)
        np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(theirs), err_msg=column)
        np.testing.assert_allclose(ours[parametrised], theirs[parametrised], rtol=1e-9, atol=1e-7, err_msg=column)
    # ctapipe fits the time gradient by least-trimmed squares from random draws (a module-level
    # generator): on small images two fits of the same pixels can differ. Most images agree
    slope = u.Quantity(table["timing_slope"]).to_value(1 / u.deg)[parametrised]
    same = np.isclose(slope, _values(recomputed, "timing_slope", 1 / u.deg)[parametrised], rtol=1e-9, atol=1e-9)
    assert same.mean() > 0.5, same


def test_times_pointing_and_sky(lstchain_dir):
    _, table = read(lstchain_dir / REAL, images=False)
    assert len(table) == 17
    assert table["time"][0].utc.iso.startswith("2021-03-21 05:02:38")
    assert np.all(np.diff(table["time"].unix) > 0)
    alt = u.Quantity(table["telescope_pointing_altitude"]).to(u.deg)
    az = u.Quantity(table["telescope_pointing_azimuth"]).to(u.deg)
    np.testing.assert_allclose(alt.value, 72.058, atol=1e-3)
    pointing = SkyCoord(alt=alt, az=az, frame=AltAz(obstime=table["time"], location=LST_SITE)).icrs
    # a wobble run: the pointing is 0.4 deg from the source
    np.testing.assert_allclose(pointing.separation(MRK501).deg, 0.4, atol=0.005)
    assert "true_energy" not in table.colnames


def test_simulation_truth(lstchain_dir):
    _, gammas = read(lstchain_dir / GAMMA, images=False)
    _, protons = read(lstchain_dir / PROTON, images=False)
    with tables.open_file(lstchain_dir / GAMMA) as h5:
        raw = h5.get_node("/dl1/event/telescope/parameters/LST_LSTCam").read()
    np.testing.assert_allclose(u.Quantity(gammas["true_energy"]).to_value(u.GeV), raw["mc_energy"] * 1e3)
    np.testing.assert_allclose(u.Quantity(gammas["true_alt"]).to_value(u.deg), 70, atol=1e-4)  # 20 deg zenith
    assert set(np.asarray(gammas["true_shower_primary_id"])) == {0}
    assert set(np.asarray(protons["true_shower_primary_id"])) == {101}


def test_noise_estimates(lstchain_dir):
    pedestal_std, pedestal = estimate_pixel_noise(lstchain_dir / REAL)
    assert pedestal["method"] == "pedestal" and pedestal["n_samples"] == 717  # interleaved pedestal events
    assert pedestal_std.shape == (1855,)
    assert 0 < np.isnan(pedestal_std).sum() < 10  # unusable pixels
    assert pedestal["nominal"] == nominal_simulator_noise()
    assert 1.0 < pedestal["median_pe"] < 4.0
    # the run's own images, away from the showers, tell about the same
    image_std, images = estimate_pixel_noise(lstchain_dir / REAL, method="images")
    assert images["n_samples"] == 16  # the flat-field event is left out
    assert abs(images["median_pe"] / pedestal["median_pe"] - 1) < 0.3
    # simulations have no monitoring: the images are used
    _, mc = estimate_pixel_noise(lstchain_dir / GAMMA)
    assert mc["method"] == "images" and np.isfinite(mc["median_pe"])


def test_training_inputs(lstchain_dir, lst1_subarray, tmp_path):
    inputs = [InputFile(lstchain_dir / GAMMA, 0), InputFile(lstchain_dir / PROTON, 1)]
    cache = build_cache(inputs, tmp_path, quality_query=TrainingQualityQuery(), progress=False)
    expected = 0  # the default cuts: intensity > 50, leakage < 0.2
    for item in inputs:
        _, table = read(item.path, images=False)
        with np.errstate(invalid="ignore"):
            passing = (np.asarray(table["hillas_intensity"]) > 50) & (
                np.asarray(table["leakage_intensity_width_2"]) < 0.2
            )
        expected += int(passing.sum())
    assert len(cache) == expected > 10
    assert set(np.asarray(cache["particle"])) == {0, 1}
    assert np.isfinite(cache["log10_energy"]).all() and np.isfinite(cache["fov_offset"]).all()
    # the observed run as unlabelled target data: its camera is the simulator's
    fingerprint = geometry_fingerprint(lst1_subarray.tel[1].camera.geometry)
    check_target_inputs([InputFile(lstchain_dir / REAL, 0)], LST, fingerprint)
    target = build_cache([InputFile(lstchain_dir / REAL, 0)], tmp_path / "target", labelled=False, progress=False)
    assert len(target) > 0 and set(np.asarray(target["particle"])) == {-1}
    with pytest.raises(DL1InputError, match="no simulated truth"):
        build_cache([InputFile(lstchain_dir / REAL, 0)], tmp_path / "labelled", progress=False)


def test_rewritten_as_ctapipe_dl1(lstchain_dir, tmp_path):
    output = tmp_path / "real.dl1.h5"
    with LSTChainDL1File(lstchain_dir / REAL) as source:
        write_ctapipe_dl1(source, output, chunk_size=5)
        original = source.read(LST)
    with TableLoader(output, focal_length_choice="EQUIVALENT") as loader:
        events = loader.read_telescope_events(dl1_images=True, dl1_parameters=True, pointing=True)
    assert len(events) == len(original) == 17
    np.testing.assert_array_equal(np.asarray(events["image"]), np.asarray(original["image"]))
    np.testing.assert_allclose(
        u.Quantity(events["telescope_pointing_altitude"]).to_value(u.deg),
        u.Quantity(original["telescope_pointing_altitude"]).to_value(u.deg),
        rtol=1e-12,
    )
    np.testing.assert_allclose(Time(events["time"]).unix, original["time"].unix, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def no_images(lstchain_dir, tmp_path_factory):
    """The real run without its image table, as ``lstchain_dl1ab --no-image`` writes it."""
    path = tmp_path_factory.mktemp("no_images") / "no_images.dl1.h5"
    with tables.open_file(lstchain_dir / REAL) as source, tables.open_file(path, "w") as target:
        source.root._f_copy_children(target.root, recursive=True)
        target.remove_node("/dl1/event/telescope/image", recursive=True)
    return path


def test_no_images_names_option(no_images, tmp_path):
    with pytest.raises(DL1InputError, match="--no-image") as err:
        build_cache([InputFile(no_images, 0)], tmp_path, labelled=False, progress=False)
    assert str(no_images) in str(err.value)


@pytest.mark.parametrize("case", ["no images", "neither format"])
def test_apply_input_errors(case, no_images, tmp_path, capfd):
    from ctapipe_gammalearn.tools.apply import ApplyGammaPhysNet

    if case == "no images":
        input_url, expected = no_images, "--no-image"
    else:
        input_url, expected = tmp_path / "other.h5", "neither ctapipe nor lstchain DL1"
        with tables.open_file(input_url, "w") as h5:
            h5.create_array("/", "x", np.arange(3))
    output = tmp_path / "out.dl2.h5"
    argv = [f"--input={input_url}", f"--output={output}", f"--model={tmp_path / 'never_read.onnx'}"]
    capfd.readouterr()
    assert run_tool(ApplyGammaPhysNet(), argv, cwd=tmp_path, raises=False) != 0
    err = capfd.readouterr().err
    assert expected in err and str(input_url) in err, err[-2000:]
    assert not list(tmp_path.glob("*out.dl2.h5*")) and not list(tmp_path.glob(".lstchain-*"))


# ---------------------------------------------------------------- apply and benchmark (torch)


@pytest.fixture(scope="module")
def applied(lstchain_dir, tmp_path_factory):
    """DL2 of the three files, with one tiny untrained model made for the MC camera: the real
    run's camera differs from it by 8 µm in pixel positions, and has the same fingerprint."""
    pytest.importorskip("torch", reason="exporting a model needs torch")
    from tiny_models import export_tiny

    from ctapipe_gammalearn.tools.apply import ApplyGammaPhysNet

    workdir = tmp_path_factory.mktemp("lstchain_apply")
    outputs = {}
    with LSTChainDL1File(lstchain_dir / GAMMA) as source:
        model = export_tiny(source.subarray, LST, workdir / "model_mc")["onnx"]
    for name in (REAL, GAMMA, PROTON):
        outputs[name] = workdir / f"{name}.dl2.h5"
        argv = ["--no-progress", "--n-threads=1", f"--input={lstchain_dir / name}", f"--output={outputs[name]}",
                f"--model={model}"]
        assert run_tool(ApplyGammaPhysNet(), argv, cwd=workdir, raises=True) == 0
    return workdir, outputs


def _dl2(path):
    with TableLoader(path, focal_length_choice="EQUIVALENT") as loader:
        return loader.read_telescope_events(dl1_parameters=True, dl2=True, pointing=True)


@pytest.mark.parametrize("name", [REAL, GAMMA, PROTON])
def test_apply_predicts_every_bright_image(name, applied):
    events = _dl2(applied[1][name])
    assert len(events) == 17
    with np.errstate(invalid="ignore"):
        bright = np.asarray(events["hillas_intensity"]) > 50
    assert bright.sum() >= 9
    valid = np.asarray(events["GammaPhysNetEnergy_tel_is_valid"])
    np.testing.assert_array_equal(valid, bright)
    for column in ("GammaPhysNetEnergy_tel_energy", "GammaPhysNetClassifier_tel_prediction",
                   "GammaPhysNetGeometry_tel_alt", "GammaPhysNetGeometry_tel_az"):
        assert np.isfinite(u.Quantity(events[column][bright]).value).all(), column
    # directions are offsets from each event's own pointing, at its own time, from the LST site
    frame = AltAz(obstime=Time(events["time"][bright]), location=LST_SITE)
    reco = SkyCoord(alt=events["GammaPhysNetGeometry_tel_alt"][bright],
                    az=events["GammaPhysNetGeometry_tel_az"][bright], frame=frame)
    pointing = SkyCoord(alt=events["telescope_pointing_altitude"][bright],
                        az=events["telescope_pointing_azimuth"][bright], frame=frame)
    assert (reco.separation(pointing).deg < 5).all()
    if name == REAL:
        assert (reco.icrs.separation(MRK501).deg < 5).all()


def test_benchmark_reads_the_dl2(applied):
    from ctapipe_gammalearn.tools.benchmark import BenchmarkTool

    workdir, outputs = applied
    report = workdir / "report"
    argv = [f"--input={outputs[GAMMA]}", f"--input={outputs[PROTON]}", f"--output-dir={report}", "--min-events=1"]
    assert run_tool(BenchmarkTool(), argv, cwd=workdir, raises=True) == 0
    assert (report / "metrics.json").is_file()

    events, location, found, _ = observed_events(outputs[REAL])
    assert location == LST_SITE and "GammaPhysNetGeometry" in found["stereo"]["geometry"]
    np.testing.assert_allclose(u.Quantity(events["pointing_alt"]).to_value(u.deg), 72.058, atol=1e-3)
    observed = workdir / "mrk501"
    argv = [f"--input={outputs[REAL]}", f"--output-dir={observed}", f"--source-ra={MRK501.ra.deg}",
            f"--source-dec={MRK501.dec.deg}", "--on-radius=0.3"]
    assert run_tool(BenchmarkTool(), argv, cwd=workdir, raises=True) == 0
    assert (observed / "metrics.json").is_file()
