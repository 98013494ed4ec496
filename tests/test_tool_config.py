"""Every tool refuses an unknown configuration key with the same one-line error."""

import importlib

import pytest
from ctapipe.core.tool import ToolConfigurationError

from ctapipe_gammalearn.tools.base import GammaLearnTool

TOOLS = [
    ("ctapipe_gammalearn.tools.apply", "ApplyGammaPhysNet"),
    ("ctapipe_gammalearn.tools.benchmark", "BenchmarkTool"),
    ("ctapipe_gammalearn.tools.simulate", "SimulateTool"),
    ("ctapipe_gammalearn.tools.train", "TrainGammaPhysNet"),
    ("ctapipe_gammalearn.tools.export", "ExportTool"),
    ("ctapipe_gammalearn.tools.config", "GammaLearnConfigTool"),
    ("ctapipe_gammalearn.tools.pseudo_observation", "PseudoObservationTool"),
    ("ctapipe_gammalearn.tools.add_nsb", "AddNSBTool"),
    ("ctapipe_gammalearn.tools.domain_distance", "DomainDistanceTool"),
    ("ctapipe_gammalearn.tools.board", "BoardTool"),
]


def _tool_class(module, name):
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("module, name", TOOLS)
def test_unknown_key_in_a_config_file_is_refused_naming_key_and_file(tmp_path, module, name):
    tool_class = _tool_class(module, name)
    assert issubclass(tool_class, GammaLearnTool)
    config = tmp_path / "typo.yaml"
    config.write_text(f"{name}:\n  no_such_option: 1\n")
    with pytest.raises(ToolConfigurationError) as err:
        tool_class().run(["--config", str(config)], raises=True)
    message = str(err.value)
    assert "\n" not in message
    assert f"unknown configuration key(s) {name}.no_such_option" in message
    assert str(config) in message


@pytest.mark.parametrize("module, name", TOOLS)
def test_unknown_key_on_the_command_line_is_refused(module, name):
    with pytest.raises(ToolConfigurationError, match=rf"command line: unknown configuration key\(s\) {name}\.typo"):
        _tool_class(module, name)().run([f"--{name}.typo=3"], raises=True)


def test_unknown_section_is_refused(tmp_path):
    config = tmp_path / "section.yaml"
    config.write_text("NoSuchComponent:\n  value: 1\n")
    with pytest.raises(ToolConfigurationError, match="unknown configuration section 'NoSuchComponent'"):
        _tool_class(*TOOLS[0])().run(["--config", str(config)], raises=True)


def test_section_of_a_component_the_tool_does_not_use_is_accepted(tmp_path):
    """One file configures ctapipe-process and the apply tool alike (gammalearn.yaml)."""
    from ctapipe.io import DataWriter  # noqa: F401  (the class is known once imported)

    config = tmp_path / "shared.yaml"
    config.write_text("DataWriter:\n  write_dl1_images: true\nApplyGammaPhysNet:\n  no_such_option: 1\n")
    # the foreign section passes; the typo in the tool's own section is still caught
    with pytest.raises(ToolConfigurationError, match=r"unknown configuration key\(s\) ApplyGammaPhysNet\.no_such"):
        _tool_class(*TOOLS[0])().run(["--config", str(config)], raises=True)
