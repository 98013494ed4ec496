"""ctapipe-gammalearn-config: write the example ctapipe-process configuration."""

from importlib.resources import files

from ctapipe.core import Provenance
from ctapipe.core.tool import ToolConfigurationError
from ctapipe.core.traits import Bool, Path, flag

from .base import GammaLearnTool

__all__ = ["GammaLearnConfigTool", "main", "example_config"]

CONFIG_NAME = "gammalearn.yaml"


def example_config():
    """The packaged example configuration (an importlib.resources Traversable)."""
    return files("ctapipe_gammalearn") / "resources" / CONFIG_NAME


class GammaLearnConfigTool(GammaLearnTool):
    """Write the example ``ctapipe-process`` configuration that switches on the
    GammaPhysNetReconstructor (image processing, Hillas and γ-PhysNet, DL1 parameters
    and DL2 output). Point its ``model_paths`` at your exported models."""

    name = "ctapipe-gammalearn-config"
    description = __doc__
    examples = """
    ctapipe-gammalearn-config --output gammalearn.yaml
    ctapipe-gammalearn-config --output configs/ --overwrite   # writes configs/gammalearn.yaml

    ctapipe-process --config gammalearn.yaml \\
        --GammaPhysNetReconstructor.model_paths=lst.onnx \\
        --input events.simtel.zst --output events.dl2.h5
    """

    output = Path(
        default_value=CONFIG_NAME,
        directory_ok=True,
        help=f"file to write, or an existing directory to write {CONFIG_NAME} into",
    ).tag(config=True)
    overwrite = Bool(False, help="replace an existing file").tag(config=True)

    aliases = {("o", "output"): "GammaLearnConfigTool.output"}
    flags = {
        **flag(
            "overwrite",
            "GammaLearnConfigTool.overwrite",
            "replace an existing output file",
            "refuse to replace an existing output file",
        ),
    }

    def setup(self):
        self.destination = self.output / CONFIG_NAME if self.output.is_dir() else self.output
        if self.destination.exists() and not self.overwrite:
            raise ToolConfigurationError(f"{self.destination} exists; use --overwrite to replace it")
        if not self.destination.parent.is_dir():
            raise ToolConfigurationError(f"directory {self.destination.parent} does not exist")

    def start(self):
        self.destination.write_text(example_config().read_text(encoding="utf-8"), encoding="utf-8")
        Provenance().add_output_file(str(self.destination), role="ctapipe-process config", add_meta=False)

    def finish(self):
        self.log.info("wrote %s", self.destination)
        print(f"wrote {self.destination}; set GammaPhysNetReconstructor.model_paths to your exported models")


def main():
    GammaLearnConfigTool().run()


if __name__ == "__main__":
    main()
