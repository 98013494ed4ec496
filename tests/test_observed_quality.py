"""Observed runs get the simulations' DL1 quality selection where they hold DL1 parameters."""

import numpy as np
import pytest
from astropy.table import Table

from ctapipe_gammalearn.evaluation.detection import DetectionInputError
from ctapipe_gammalearn.evaluation.observation import _quality_selected

CRITERIA = [("bright", "hillas_intensity > 50")]


class _Node:
    def __init__(self, children):
        self._v_children = children


class _File:
    def __init__(self, groups):
        self.groups = groups

    def __contains__(self, name):
        return name in self.groups

    def get_node(self, name):
        return _Node(self.groups[name])


class _Loader:
    """What `_quality_selected` reads of a TableLoader: its file and the telescope events."""

    def __init__(self, tel_events, with_parameters=True):
        group = "/dl1/event/telescope/parameters"
        self.h5file = _File({group: {"tel_001": object()}} if with_parameters else {})
        self.tel_events = tel_events

    def read_telescope_events(self, **kwargs):
        assert kwargs["dl1_parameters"] and not kwargs["simulated"]
        return self.tel_events.copy()


def _events():
    subarray = Table({"obs_id": [1, 1, 1, 1], "event_id": [10, 11, 12, 13]})
    # event 10: one bright telescope; 11: faint only; 12: one faint, one bright; 13: no image
    tel = Table({
        "obs_id": [1, 1, 1, 1, 1],
        "event_id": [10, 11, 12, 12, 13],
        "tel_id": [1, 1, 1, 2, 1],
        "hillas_intensity": [80.0, 20.0, 30.0, 300.0, np.nan],
    })
    return subarray, tel


def test_events_without_a_passing_telescope_are_dropped():
    subarray, tel = _events()
    selected = _quality_selected("run.dl2.h5", _Loader(tel), subarray, CRITERIA)
    assert list(selected["event_id"]) == [10, 12]
    assert "file_index" not in selected.colnames


def test_runs_without_dl1_parameters_are_kept_whole():
    subarray, tel = _events()
    kept = _quality_selected("pseudo.dl2.h5", _Loader(tel, with_parameters=False), subarray, CRITERIA)
    assert list(kept["event_id"]) == [10, 11, 12, 13]


def test_criteria_on_absent_columns_name_the_file():
    subarray, tel = _events()
    with pytest.raises(DetectionInputError, match=r"^run\.dl2\.h5: the quality criteria use columns absent"):
        _quality_selected("run.dl2.h5", _Loader(tel), subarray, [("wide", "hillas_width > 0.1")])
