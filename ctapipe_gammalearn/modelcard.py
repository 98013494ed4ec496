"""The model card: what an exported γ-PhysNet file promises about itself.

The card is JSON, stored in ONNX ``metadata_props[CARD_KEY]`` and in a
TorchScript extra file named ``CARD_KEY + ".json"``. It is everything the
runtime needs to match a model to a telescope and to read its outputs; it
never needs torch.
"""

import json
from dataclasses import asdict, dataclass, field

__all__ = [
    "CARD_KEY",
    "FORMAT_VERSION",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "INPUTS",
    "OUTPUTS",
    "TARGETS",
    "CLASS_NAMES",
    "GAMMA_CLASS_INDEX",
    "ModelCard",
    "ModelCardError",
]

CARD_KEY = "ctapipe_gammalearn_card"
FORMAT_VERSION = "1.0"

#: inputs: raw DL1, normalisation happens inside the network; NaN allowed
INPUTS = {
    "image": {"shape": ["batch", "n_pixels"], "unit": "p.e.", "dtype": "float32"},
    "peak_time": {"shape": ["batch", "n_pixels"], "unit": "ns", "dtype": "float32"},
}
INPUT_NAMES = tuple(INPUTS)

#: outputs in the order the network returns them
OUTPUTS = {
    "class_logits": {"shape": ["batch", "n_classes"], "unit": ""},
    "log10_energy": {"shape": ["batch"], "unit": "log10(E/TeV)"},
    "log10_energy_logvar": {"shape": ["batch"], "unit": "ln(var of log10(E/TeV))"},
    "fov_offset": {"shape": ["batch", 2], "unit": "deg"},
    "fov_offset_logvar": {"shape": ["batch", 2], "unit": "ln(deg^2)"},
    "impact": {"shape": ["batch", 2], "unit": "m"},
    "impact_logvar": {"shape": ["batch", 2], "unit": "ln(m^2)"},
}
OUTPUT_NAMES = tuple(OUTPUTS)

TARGETS = {
    "class_logits": "particle class, softmax over class_names",
    "log10_energy": "log10 of the true energy in TeV",
    "fov_offset": "true source (fov_lon, fov_lat) in the TelescopeFrame of the telescope",
    "impact": "shower core minus telescope position, ground frame (x, y)",
}
CLASS_NAMES = ("gamma", "proton")
GAMMA_CLASS_INDEX = 0


class ModelCardError(ValueError):
    """A model file whose card is missing or does not fit this package."""


@dataclass
class ModelCard:
    telescope_type: str  # str(TelescopeDescription), e.g. "LST_LST_LSTCam"
    camera_name: str
    geometry_fingerprint: str  # ctapipe_gammalearn.lattice.geometry_fingerprint
    n_pixels: int
    preset: str
    package_version: str
    format_version: str = FORMAT_VERSION
    inputs: dict = field(default_factory=lambda: dict(INPUTS))
    outputs: dict = field(default_factory=lambda: dict(OUTPUTS))
    targets: dict = field(default_factory=lambda: dict(TARGETS))
    class_names: tuple = CLASS_NAMES
    gamma_class_index: int = GAMMA_CLASS_INDEX
    trained: bool = False
    training: dict = field(default_factory=dict)  # provenance when known

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source="model") -> "ModelCard":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ModelCardError(f"{source}: model card is not valid JSON ({err})") from None
        major = str(data.get("format_version", "")).split(".")[0]
        if major != FORMAT_VERSION.split(".")[0]:
            raise ModelCardError(
                f"{source}: model card format {data.get('format_version')!r} "
                f"is not supported (expected {FORMAT_VERSION})"
            )
        known = set(cls.__dataclass_fields__)
        data["class_names"] = tuple(data.get("class_names", CLASS_NAMES))
        return cls(**{k: v for k, v in data.items() if k in known})
