"""ctapipe-gammalearn-config writes the packaged example configuration, never over a file by accident."""

from importlib.resources import files

from ctapipe.core import run_tool

from ctapipe_gammalearn.tools.config import GammaLearnConfigTool

PACKAGED = files("ctapipe_gammalearn") / "resources" / "gammalearn.yaml"


def test_writes_packaged_config_and_refuses_to_overwrite(tmp_path, capsys):
    output = tmp_path / "my.yaml"
    assert run_tool(GammaLearnConfigTool(), [f"--output={output}"], cwd=tmp_path) == 0
    assert output.read_text() == PACKAGED.read_text()
    assert "GammaPhysNetReconstructor" in output.read_text()

    output.write_text("edited\n")
    capsys.readouterr()
    assert run_tool(GammaLearnConfigTool(), [f"--output={output}"], cwd=tmp_path, raises=False) != 0
    assert "--overwrite" in capsys.readouterr().err
    assert output.read_text() == "edited\n"

    assert run_tool(GammaLearnConfigTool(), [f"--output={output}", "--overwrite"], cwd=tmp_path) == 0
    assert output.read_text() == PACKAGED.read_text()

    # a directory gets gammalearn.yaml inside it
    assert run_tool(GammaLearnConfigTool(), [f"--output={tmp_path}"], cwd=tmp_path) == 0
    assert (tmp_path / "gammalearn.yaml").read_text() == PACKAGED.read_text()
