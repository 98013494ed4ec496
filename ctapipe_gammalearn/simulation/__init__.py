"""Labelled air-shower simulation: shower physics, Cherenkov light, detector response, observing
conditions, EventSource."""

from .conditions import ObservingConditions
from .detector import DetectorResponse
from .shower_model import AirShowerModel
from .source import AirShowerSimEventSource

__all__ = ["AirShowerSimEventSource", "AirShowerModel", "DetectorResponse", "ObservingConditions"]
