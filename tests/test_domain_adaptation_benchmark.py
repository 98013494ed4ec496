"""benchmarks/domain_adaptation.py reports a recovered gap only where the oracle is better."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "domain_adaptation.py"


def _module():
    spec = importlib.util.spec_from_file_location("domain_adaptation_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(name, auc, angular):
    return {"row": name, "auc": auc, "angular_resolution": angular}


def test_gap_shares_where_the_oracle_is_better():
    lines = _module().gap_lines([_row("none", 0.80, 0.40), _row("dann", 0.85, 0.35), _row("oracle", 0.90, 0.30)])
    assert "dann: auc gap recovered +50%" in lines
    assert "dann: angular_resolution gap recovered +50%" in lines


def test_no_gap_where_the_oracle_is_worse():
    lines = _module().gap_lines([_row("none", 0.80, 0.30), _row("dann", 0.82, 0.35), _row("oracle", 0.90, 0.40)])
    assert "dann: auc gap recovered +20%" in lines
    assert not any(line.startswith("dann: angular_resolution") for line in lines)
    assert any(line.startswith("angular_resolution: the oracle (0.400) is not better") for line in lines)


def test_significance_of_each_method_and_cuts():
    point = {"observation": [
        {"method": "reference", "cuts": "best", "significance": 4.0},
        {"method": "GammaPhysNet", "cuts": "best", "significance": 6.5},
        {"method": "GammaPhysNet", "cuts": "efficiency", "significance": 5.0},
    ]}
    module = _module()
    assert module._significance(point, "GammaPhysNet", "best") == 6.5
    assert module._significance(point, "reference", "best") == 4.0
    assert module._significance(point, "reference", "efficiency") is None
    assert module._significance({}, "GammaPhysNet", "best") is None
