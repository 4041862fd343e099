"""``dexloop export`` and ``dexloop bench latency`` from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policies"))

from act_checkpoints import materialize

from dexloop.cli.main import main as dexloop


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return materialize("act_envstate", tmp_path_factory.mktemp("cli_checkpoint"))


def test_export_writes_the_graph_and_reports_it(checkpoint, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert dexloop(["export", f"--policy.path={checkpoint}", "--onnx", f"--output={out}"]) == 0
    printed = capsys.readouterr().out
    assert f"exported act (fp32, opset 18) to {out}" in printed
    assert "input  observation.state: float32 ['batch', 5]" in printed
    manifest = json.loads((out / "dexloop_export.json").read_text())
    assert manifest["graphs"]["policy"]["file"] == "policy.onnx"
    # The default folder sits beside the checkpoint.
    assert dexloop(["export", f"--policy.path={checkpoint}", "--onnx"]) == 0
    assert (checkpoint.parent / "onnx_fp32" / "dexloop_export.json").is_file()


def test_export_help_and_bad_options(checkpoint, tmp_path, capsys):
    assert dexloop(["export", "--help"]) == 0
    assert "--precision=str [fp32]" in capsys.readouterr().out
    assert dexloop(["export", f"--policy.path={checkpoint}"]) == 2
    assert "--onnx" in capsys.readouterr().err
    assert dexloop(["export", "--onnx"]) == 2
    assert "--policy.path" in capsys.readouterr().err
    assert dexloop(["export", f"--policy.path={checkpoint}", "--onnx", "--precision=int4"]) == 2
    assert "int4" in capsys.readouterr().err
    assert (
        dexloop(["export", f"--policy.path={tmp_path / 'none'}", "--onnx", f"--output={tmp_path / 'x'}"]) == 1
    )
    assert str(tmp_path / "none") in capsys.readouterr().err


def test_bench_latency_measures_each_variant(checkpoint, tmp_path, capsys):
    out = tmp_path / "latency"
    args = [
        "bench",
        "latency",
        f"--policy.path={checkpoint}",
        "--variants=torch,ort-fp32",
        "--batch_sizes=1,3",
        "--calls=5",
        "--warmup=1",
        f"--output_dir={out}",
    ]
    assert dexloop(args) == 0
    printed = capsys.readouterr().out
    assert "ort-fp32" in printed and "vs torch" in printed
    report = json.loads((out / "latency.json").read_text())
    assert [(r["variant"], r["batch"]) for r in report["rows"]] == [
        ("torch", 1),
        ("torch", 3),
        ("ort-fp32", 1),
        ("ort-fp32", 3),
    ]
    for row in report["rows"]:
        for stage in ("preprocess", "inference", "postprocess", "call"):
            timing = row[stage]
            assert 0 <= timing["p50"] <= timing["p90"] <= timing["p99"] <= timing["max"]
        assert row["call"]["p50"] > 0 and row["model_mb"] > 0
    assert report["rows"][0]["p50_vs_baseline"] == 1.0


def test_bench_refuses_what_it_cannot_run(checkpoint, capsys):
    assert dexloop(["bench", "latency", f"--policy.path={checkpoint}", "--variants=torch,tflite"]) == 2
    assert "tflite" in capsys.readouterr().err
    assert dexloop(["bench", "speed"]) == 2
    assert dexloop(["bench", "latency", "--calls=5"]) == 2
    assert "--policy.path" in capsys.readouterr().err
