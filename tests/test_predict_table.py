"""GammaPhysNetReconstructor.predict_table: ctapipe's table API, the same results as the event loop."""

import astropy.units as u
import numpy as np
import pytest
from ctapipe.io import EventSource, HDF5Merger, TableLoader
from ctapipe.reco.reconstructor import ReconstructionProperty
from tiny_models import export_tiny

from ctapipe_gammalearn.compat import PARTICLE_TYPE_KEY
from ctapipe_gammalearn.dl2 import ENERGY_PREFIX, PREFIXES
from ctapipe_gammalearn.reco import GammaPhysNetReconstructor, MissingImagesError

KEYS = ["obs_id", "event_id", "tel_id"]
#: attribute of ``event.dl2.tel[i]`` per property name
DL2_KEYS = {"ENERGY": "energy", "PARTICLE_TYPE": PARTICLE_TYPE_KEY, "GEOMETRY": "geometry"}


@pytest.fixture(scope="module")
def dl1_path(shared_data):
    """10 LST and 46 NectarCam telescope events, some below the quality cut."""
    return shared_data / "dl1" / "gamma__mono_trigger.dl1.h5"


@pytest.fixture(scope="module")
def subarray(dl1_path):
    with TableLoader(dl1_path, focal_length_choice="EQUIVALENT") as loader:
        return loader.subarray


@pytest.fixture(scope="module")
def lst_type(subarray):
    return next(str(t) for t in subarray.telescope_types if str(t).startswith("LST"))


@pytest.fixture(scope="module")
def reco(subarray, lst_type, tmp_path_factory):
    """A model for the LSTs only: the NectarCams have none."""
    stem = tmp_path_factory.mktemp("predict_table") / "lst"
    model = export_tiny(subarray, lst_type, stem)["onnx"]
    return GammaPhysNetReconstructor(subarray, model_paths=[str(model)], n_threads=1)


@pytest.fixture(scope="module")
def tables_by_type(dl1_path):
    with TableLoader(dl1_path, focal_length_choice="EQUIVALENT") as loader:
        return loader.read_telescope_events_by_type(
            dl1_images=True,
            dl1_parameters=True,
            simulated=False,
            true_images=False,
            true_parameters=False,
            observation_info=True,
            pointing=True,
        )


@pytest.fixture(scope="module")
def event_loop_containers(dl1_path, reco):
    """(obs_id, event_id, tel_id) -> {property: container} from ``reco(event)``."""
    containers = {}
    with EventSource(dl1_path, focal_length_choice="EQUIVALENT") as source:
        for event in source:
            reco(event)
            for tel_id in event.trigger.tels_with_trigger:
                dl2 = event.dl2.tel[tel_id]
                key = (event.index.obs_id, event.index.event_id, tel_id)
                containers[key] = {
                    prop: getattr(dl2, DL2_KEYS[prop.name])[prefix] for prop, prefix in PREFIXES.items()
                }
    return containers


def _field_values(containers, keys, prop, field):
    values = [containers[key][prop][field] for key in keys]
    if isinstance(values[0], u.Quantity):
        return u.Quantity(values)
    return np.array(values, dtype=float)


def test_predict_table_matches_event_loop(reco, tables_by_type, event_loop_containers):
    n_valid = 0
    for telescope_type, table in tables_by_type.items():
        keys = [tuple(int(v) for v in row) for row in table[KEYS]]
        for prop, result in reco.predict_table(telescope_type, table).items():
            assert result.colnames[:3] == KEYS and len(result) == len(table)
            for name in KEYS:
                np.testing.assert_array_equal(result[name], table[name])
            prefix = f"{PREFIXES[prop]}_tel_"
            for column in result.colnames[3:]:
                field = column.removeprefix(prefix)
                expected = _field_values(event_loop_containers, keys, prop, field)
                got = result[column].quantity if result[column].unit else np.asarray(result[column], float)
                unit = getattr(got, "unit", None)
                np.testing.assert_allclose(
                    u.Quantity(got).value,
                    u.Quantity(expected).to_value(unit) if unit else expected,
                    rtol=1e-6,
                    equal_nan=True,
                    err_msg=column,
                )
            n_valid += np.count_nonzero(result[f"{prefix}is_valid"])
    assert n_valid > 0


def test_rows_without_model_or_below_quality_are_invalid(reco, tables_by_type, lst_type):
    seen = {"no model": 0, "below quality": 0, "valid": 0}
    for telescope_type, table in tables_by_type.items():
        has_model = telescope_type == lst_type
        bright = np.nan_to_num(np.asarray(table["hillas_intensity"]), nan=0.0) > 50
        predictions = reco.predict_table(telescope_type, table)
        for prop, result in predictions.items():
            valid = np.asarray(result[f"{PREFIXES[prop]}_tel_is_valid"])
            np.testing.assert_array_equal(valid, bright & has_model, err_msg=str(prop))
        energy = predictions[ReconstructionProperty.ENERGY][f"{ENERGY_PREFIX}_tel_energy"]
        assert np.all(np.isnan(energy[~(bright & has_model)]))
        seen["no model"] += 0 if has_model else len(table)
        seen["below quality"] += np.count_nonzero(~bright) if has_model else 0
        seen["valid"] += np.count_nonzero(bright) if has_model else 0
    assert all(n > 0 for n in seen.values()), seen


def test_empty_table_gives_empty_tables(reco, tables_by_type, lst_type):
    table = tables_by_type[lst_type][:0]
    for prop, result in reco.predict_table(lst_type, table).items():
        assert len(result) == 0 and f"{PREFIXES[prop]}_tel_is_valid" in result.colnames


def test_table_without_images_is_refused(reco, tables_by_type, lst_type):
    table = tables_by_type[lst_type].copy()
    table.remove_columns(["image", "peak_time"])
    with pytest.raises(MissingImagesError, match="--write-images"):
        reco.predict_table(lst_type, table)


def test_event_without_image_names_the_file(dl1_path, reco, tmp_path):
    no_images = tmp_path / "no_images.dl1.h5"
    with HDF5Merger(no_images, dl1_images=False, overwrite=True) as merger:
        merger(dl1_path)
    with EventSource(no_images, focal_length_choice="EQUIVALENT") as source:
        with pytest.raises(MissingImagesError, match="no_images.dl1.h5.*--write-images"):
            for event in source:
                reco(event)
