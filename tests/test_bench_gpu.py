"""benchmarks/bench_gpu.sh runs end to end on CPU at a tiny size and reports every figure."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_script_reports_training_and_inference_figures(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    run = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "bench_gpu.sh"), "--device", "cpu", "--tiny"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "matmul peak" in run.stdout
    figures = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert set(figures["peak_gflops"]) == {"fp32", "bf16"}
    assert {(r["preset"], r["precision"]) for r in figures["train"]} == {("small", "fp32"), ("small", "bf16")}
    assert {(r["runtime"].split()[0], r["batch"]) for r in figures["infer"]} == {
        ("onnxruntime", 1), ("onnxruntime", 8), ("torchscript", 1), ("torchscript", 8),
    }
    for row in figures["train"] + figures["infer"]:
        assert math.isfinite(row["images_per_s"]) and row["images_per_s"] > 0
        assert 0 < row["fraction_of_bf16_peak"]
