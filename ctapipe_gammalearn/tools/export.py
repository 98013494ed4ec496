"""ctapipe-gammalearn-export: checkpoint (or an untrained network) -> ONNX + TorchScript."""

from ctapipe.core import Provenance
from ctapipe.core.tool import ToolConfigurationError
from ctapipe.core.traits import Bool, CaselessStrEnum, Integer, Path, Unicode, flag

from ..presets import PRESET_NAMES
from .base import GammaLearnTool

__all__ = ["ExportTool", "main"]


def _read_subarray(path):
    """Subarray of a sim_telarray or ctapipe HDF5 file.

    The pixel layout in the camera frame does not depend on the focal length,
    and EQUIVALENT is the choice every file can provide.
    """
    from ctapipe.io import EventSource

    with EventSource(path, focal_length_choice="EQUIVALENT", max_events=1) as source:
        return source.subarray


class ExportTool(GammaLearnTool):
    """Export a γ-PhysNet to ``<output>.onnx`` and ``<output>.pt`` with its model card.

    From a training checkpoint, or, with ``--init-random``, an untrained network
    for a camera read from a sim_telarray or DL1 file (to wire up pipelines).
    """

    name = "ctapipe-gammalearn-export"
    description = __doc__
    examples = """
    ctapipe-gammalearn-export --checkpoint run/checkpoint_best.pt --output models/lst

    ctapipe-gammalearn-export --init-random --input gamma.simtel.zst \\
        --telescope-type LST_LST_LSTCam --preset small --output models/lst_random
    """

    checkpoint = Path(
        default_value=None, allow_none=True, directory_ok=False, help="training checkpoint"
    ).tag(config=True)
    output_path = Path(
        default_value=None,
        allow_none=True,
        directory_ok=False,
        help="output stem: .onnx and .pt are appended (with --telescope-type all: _<type> too)",
    ).tag(config=True)
    init_random = Bool(False, help="export an untrained network instead of a checkpoint").tag(
        config=True
    )
    input_url = Path(
        default_value=None,
        allow_none=True,
        directory_ok=False,
        help="with --init-random: sim_telarray or ctapipe file whose subarray gives the camera",
    ).tag(config=True)
    telescope_type = Unicode(
        default_value=None,
        allow_none=True,
        help="with --init-random: str(TelescopeDescription), e.g. LST_LST_LSTCam; 'all': one per type",
    ).tag(config=True)
    preset = CaselessStrEnum(PRESET_NAMES, default_value="small", help="network preset").tag(
        config=True
    )
    seed = Integer(0, help="with --init-random: torch seed of the initial weights").tag(config=True)
    opset = Integer(17, help="ONNX opset").tag(config=True)

    aliases = {
        "checkpoint": "ExportTool.checkpoint",
        ("o", "output"): "ExportTool.output_path",
        ("i", "input"): "ExportTool.input_url",
        "telescope-type": "ExportTool.telescope_type",
        "preset": "ExportTool.preset",
        "seed": "ExportTool.seed",
        "opset": "ExportTool.opset",
    }
    flags = {
        **flag("init-random", "ExportTool.init_random", "export an untrained network", "export a checkpoint"),
        **flag("overwrite", "Tool.overwrite", "replace existing outputs", "keep them"),
    }

    def setup(self):
        if self.output_path is None:
            raise ToolConfigurationError("--output is required")
        if self.init_random:
            if self.input_url is None or self.telescope_type is None:
                raise ToolConfigurationError("--init-random needs --input and --telescope-type")
            if not self.input_url.is_file():
                raise ToolConfigurationError(f"{self.input_url}: input file not found")
        else:
            if self.checkpoint is None:
                raise ToolConfigurationError("give --checkpoint, or --init-random with --input")
            if not self.checkpoint.is_file():
                raise ToolConfigurationError(f"{self.checkpoint}: checkpoint not found")
        self.results = []

    def _random_exports(self):
        import torch

        from ..lattice import Lattice
        from ..nn import GammaPhysNet
        from ..nn.export import export_model

        try:
            subarray = _read_subarray(self.input_url)
        except Exception as err:  # noqa: BLE001 - any reader failure: say which file
            raise ToolConfigurationError(f"{self.input_url}: cannot read the subarray ({err})") from None
        Provenance().add_input_file(str(self.input_url), role="subarray", add_meta=False)
        types = {str(t): t for t in subarray.telescope_types}
        if self.telescope_type.lower() == "all":
            selected = [(name, self.output_path.with_name(f"{self.output_path.name}_{name}")) for name in sorted(types)]
        elif self.telescope_type in types:
            selected = [(self.telescope_type, self.output_path)]
        else:
            raise ToolConfigurationError(
                f"{self.input_url}: no telescope type {self.telescope_type!r}; "
                f"available: {', '.join(sorted(types))}"
            )
        for name, stem in selected:
            lattice = Lattice.from_geometry(types[name].camera.geometry)
            torch.manual_seed(self.seed)
            model = GammaPhysNet(lattice, preset=self.preset)
            self.log.info("exporting untrained %s network for %s to %s", self.preset, name, stem)
            yield export_model(
                model,
                lattice,
                name,
                stem,
                training={"init": "random", "seed": self.seed, "subarray_from": str(self.input_url)},
                trained=False,
                opset=self.opset,
                overwrite=self.overwrite,
            )

    def start(self):
        from ..nn.export import ExportError, export_checkpoint

        try:
            if self.init_random:
                self.results = list(self._random_exports())
            else:
                Provenance().add_input_file(str(self.checkpoint), role="checkpoint", add_meta=False)
                self.results = [
                    export_checkpoint(
                        self.checkpoint, self.output_path, opset=self.opset, overwrite=self.overwrite
                    )
                ]
        except (ExportError, FileExistsError, FileNotFoundError) as err:
            raise ToolConfigurationError(str(err)) from None

    def finish(self):
        for result in self.results:
            for key in ("onnx", "torchscript"):
                Provenance().add_output_file(str(result[key]), role="GammaPhysNet model", add_meta=False)
            self.log.info(
                "wrote %s and %s (max relative difference onnxruntime vs torch: %.2g)",
                result["onnx"],
                result["torchscript"],
                result["max_rel_diff"],
            )


def main():
    ExportTool().run()


if __name__ == "__main__":
    main()
