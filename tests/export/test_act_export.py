"""ACT exported to ONNX and run by dexloop.inference: on the checkpoints LeRobot 0.6.1 saved (both
layouts, tests/data/policies/act), the graph fed raw uint8 images and state gives LeRobot's own
unnormalised chunks and select_action sequences (queue and temporal ensembling); precision variants
report their error; bad exports and bad inputs get typed errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policies"))

from act_checkpoints import CASE_NAMES, materialize, reference
from act_reference_cases import CASES, observations

from dexloop.errors import ExportError, ExportManifestError, InferenceError, InferenceInputError
from dexloop.export import MANIFEST_NAME, ExportManifest, export_policy
from dexloop.inference import Runtime, TemporalEnsembler
from dexloop.policies.act.modeling_act import ACTTemporalEnsembler

# The acceptance bound for fp32 ONNX against torch (LeRobot's outputs here).
FP32_ATOL = 1e-4


def raw_observation(case: str, obs: dict[str, np.ndarray], layout: str = "HWC") -> dict[str, np.ndarray]:
    """A reference observation as a robot gives it: images uint8 (the references are k/255 values)."""
    out = {}
    for key, (kind, _) in CASES[case]["inputs"].items():
        value = obs[key]
        if kind == "VISUAL":
            value = np.rint(value * 255).astype(np.uint8)
            if layout == "HWC":
                value = value.transpose(0, 2, 3, 1).copy()
        out[key] = value
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    parent = tmp_path_factory.mktemp("act_checkpoints")
    return {name: materialize(name, parent) for name in CASE_NAMES}


@pytest.fixture(scope="module")
def exports(checkpoints, tmp_path_factory) -> dict[str, Path]:
    parent = tmp_path_factory.mktemp("act_exports")
    return {name: export_policy(path, parent / name).folder for name, path in checkpoints.items()}


@pytest.mark.parametrize("name", CASE_NAMES)
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_exported_act_gives_lerobots_chunks_and_actions(exports, name, backend):
    case = name.removesuffix("_legacy")
    ref, _ = reference(name)
    runtime = Runtime.load(exports[name], backend=backend)
    steps = [raw_observation(case, obs) for obs in observations(case)]
    chunk = runtime.predict_chunk(steps[0])
    np.testing.assert_allclose(chunk, ref["predict_action_chunk"].numpy(), atol=FP32_ATOL, rtol=0)
    runtime.reset()
    actions = np.stack([runtime.select_action(obs) for obs in steps])
    np.testing.assert_allclose(actions, ref["select_action"].numpy(), atol=FP32_ATOL, rtol=0)


def test_manifest_describes_the_graph(exports, checkpoints):
    manifest = ExportManifest.load(exports["act_2cam"])
    graph = manifest.graphs["policy"]
    assert [(t.name, t.shape, t.dtype, t.layout) for t in graph.inputs] == [
        ("observation.images.top", ["batch", 64, 64, 3], "uint8", "HWC"),
        ("observation.images.wrist", ["batch", 64, 64, 3], "uint8", "HWC"),
        ("observation.state", ["batch", 4], "float32", None),
    ]
    assert [(t.name, t.shape) for t in graph.outputs] == [("action", ["batch", 10, 3])]
    assert (manifest.chunk_size, manifest.n_action_steps, manifest.action_dim) == (10, 4, 3)
    assert manifest.check["policy"]["max_abs_error"] < FP32_ATOL
    assert manifest.source["path"] == str(checkpoints["act_2cam"].resolve())
    ensemble = ExportManifest.load(exports["act_ensemble"])
    assert ensemble.temporal_ensemble_coeff == pytest.approx(0.01)


def test_batch_is_dynamic(exports):
    """One graph serves batch 1 and larger batches; each sample's chunk is its own."""
    runtime = Runtime.load(exports["act_envstate"])
    rng = np.random.default_rng(5)
    batch = {
        "observation.state": rng.uniform(-2, 2, (7, 5)).astype(np.float32),
        "observation.environment_state": rng.uniform(-2, 2, (7, 6)).astype(np.float32),
    }
    together = runtime.predict_chunk(batch)
    assert together.shape == (7, 8, 4)
    for i in range(7):
        alone = runtime.predict_chunk({k: v[i] for k, v in batch.items()})  # unbatched: a batch of one
        np.testing.assert_allclose(alone[0], together[i], atol=1e-5, rtol=0)


def test_channels_first_layout(checkpoints, tmp_path):
    folder = export_policy(checkpoints["act_ensemble"], tmp_path / "chw", image_layout="CHW").folder
    ref, _ = reference("act_ensemble")
    obs = raw_observation("act_ensemble", observations("act_ensemble")[0], layout="CHW")
    assert obs["observation.image"].shape == (2, 3, 32, 64)
    np.testing.assert_allclose(
        Runtime.load(folder).predict_chunk(obs), ref["predict_action_chunk"].numpy(), atol=FP32_ATOL, rtol=0
    )


@pytest.mark.parametrize(("precision", "bound"), [("fp16", 0.05), ("int8-dynamic", 0.3), ("int8", 0.5)])
def test_reduced_precisions_run_and_report_their_error(checkpoints, tmp_path, precision, bound):
    """fp16 and int8 graphs keep the graph's inputs and outputs; their measured error is reported in
    the manifest and stays within a loose bound of the action scale (a broken quantisation is far off)."""
    folder = export_policy(checkpoints["act_2cam"], tmp_path / precision, precision=precision).folder
    manifest = ExportManifest.load(folder)
    assert manifest.precision == precision
    assert [t.dtype for t in manifest.graphs["policy"].inputs] == ["uint8", "uint8", "float32"]
    ref, _ = reference("act_2cam")
    chunk = Runtime.load(folder).predict_chunk(raw_observation("act_2cam", observations("act_2cam")[0]))
    assert chunk.dtype == np.float32 and np.isfinite(chunk).all()
    error = float(np.abs(chunk - ref["predict_action_chunk"].numpy()).max())
    scale = manifest.check["policy"]["output_scale"]
    assert 0 < manifest.check["policy"]["max_abs_error"] < bound * scale
    assert error < bound * scale


def test_numpy_temporal_ensembler_is_the_policys():
    rng = np.random.default_rng(2)
    chunks = rng.standard_normal((12, 3, 6, 2)).astype(np.float32)
    ours, theirs = TemporalEnsembler(0.05, 6), ACTTemporalEnsembler(0.05, 6)
    for chunk in chunks:
        np.testing.assert_allclose(
            ours.update(chunk), theirs.update(torch.from_numpy(chunk)).numpy(), atol=1e-6, rtol=0
        )


# Bad input -----------------------------------------------------------------------------------------


def test_unsupported_policy_type_is_refused(checkpoints, tmp_path):
    broken = tmp_path / "vqbet"
    broken.mkdir()
    config = json.loads((checkpoints["act_2cam"] / "config.json").read_text())
    config["type"] = "vqbet"
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="vqbet"):
        export_policy(broken, tmp_path / "out")
    with pytest.raises(ExportError, match="config.json|no such|not found"):
        export_policy(tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_output_and_bad_options_are_refused(checkpoints, exports, tmp_path):
    with pytest.raises(ExportError, match="exists"):
        export_policy(checkpoints["act_2cam"], exports["act_2cam"])
    with pytest.raises(ExportError, match="precision"):
        export_policy(checkpoints["act_2cam"], tmp_path / "x", precision="int4")
    with pytest.raises(ExportError, match="layout"):
        export_policy(checkpoints["act_2cam"], tmp_path / "y", image_layout="HW")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no staging folder left behind


def test_missing_damaged_or_replaced_export_files(exports, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(exports["act_envstate"], folder)
    with pytest.raises(ExportManifestError, match="no export manifest"):
        Runtime.load(tmp_path)
    graph = folder / "policy.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ExportManifestError, match="SHA-256 differs"):
        Runtime.load(folder)
    graph.unlink()
    with pytest.raises(ExportManifestError, match="missing"):
        Runtime.load(folder)
    manifest = folder / MANIFEST_NAME
    for text, match in [
        ("{not json", "unreadable"),
        (json.dumps({"format": "other/9"}), "format"),
        (json.dumps({"format": "dexloop-export/1", "policy_type": "act"}), "missing or malformed"),
    ]:
        manifest.write_text(text)
        with pytest.raises(ExportManifestError, match=match):
            Runtime.load(folder)


def test_inputs_of_the_wrong_kind_are_named(exports):
    runtime = Runtime.load(exports["act_2cam"])
    good = raw_observation("act_2cam", observations("act_2cam")[0])
    cases = [
        ({k: v for k, v in good.items() if k != "observation.state"}, "no 'observation.state'"),
        (
            {**good, "observation.images.top": good["observation.images.top"] / 255.0},
            "top.*dtype float64.*uint8",
        ),
        (
            {**good, "observation.images.wrist": good["observation.images.wrist"].transpose(0, 3, 1, 2)},
            r"wrist.*shape \(2, 3, 64, 64\).*HWC",
        ),
        ({**good, "observation.state": good["observation.state"][:1]}, "batch 1.*batch 2"),
        ({**good, "observation.state": good["observation.state"].astype(np.float64)}, "state.*float64"),
        ("not a mapping", "mapping"),
    ]
    for observation, match in cases:
        with pytest.raises(InferenceInputError, match=match):
            runtime.predict_chunk(observation)


def test_an_absent_execution_provider_names_what_to_install(exports):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine's ONNX Runtime has CUDA")
    with pytest.raises(InferenceError, match="onnxruntime-gpu"):
        Runtime.load(exports["act_2cam"], device="cuda")
    with pytest.raises(InferenceError, match="backend"):
        Runtime.load(exports["act_2cam"], backend="tflite")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_cpu_thread_counts_of_a_small_computer(checkpoints, exports, tmp_path, precision):
    """ONNX Runtime's CPU provider with 1 to 4 intra-op threads, as a Jetson's or a Raspberry Pi's cores
    run it, gives the same actions as its default."""
    folder = (
        exports["act_2cam"]
        if precision == "fp32"
        else export_policy(checkpoints["act_2cam"], tmp_path / "int8", precision="int8").folder
    )
    obs = raw_observation("act_2cam", observations("act_2cam")[0])
    default = Runtime.load(folder).predict_chunk(obs)
    for threads in (1, 2, 3, 4):
        np.testing.assert_allclose(
            Runtime.load(folder, threads=threads).predict_chunk(obs), default, atol=1e-5, rtol=0
        )
