"""``export_policy``: a LeRobot-layout checkpoint (dexloop's or LeRobot 0.6.1's) -> ONNX graphs + manifest.

The graphs are traced by torch.onnx's exporter (torch.export based, ``dynamo=True``) with a dynamic batch
dimension. Each export is checked before it is kept: ONNX Runtime runs the graph on seeded inputs and
its actions are compared with the torch module's (``manifest.check``); an fp32 graph that disagrees
beyond ``FP32_TOLERANCE`` raises ExportError. Precision variants are derived from the fp32 graph:

- fp16: weights and activations in half precision, inputs and outputs kept as declared (for GPUs;
  ONNX Runtime's float16 converter);
- int8: ONNX Runtime's static QDQ quantisation of the convolutions, weights per channel, activation
  ranges calibrated on observations (the training dataset's frames when given, else the check
  inputs), or dynamic quantisation of the matrix products (``int8-dynamic``).

Files are written to a staging folder and renamed into place, so a failed export leaves no half folder.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dexloop.errors import ExportError, PolicyError
from dexloop.export.graphs import (
    IMAGE_LAYOUTS,
    ACTChunkGraph,
    DiffusionDenoiserGraph,
    DiffusionEncoderGraph,
    ObservationInput,
)
from dexloop.export.manifest import (
    BATCH,
    ExportManifest,
    GraphSpec,
    TensorSpec,
    sha256_of_file,
    sha256_of_folder,
)

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
SUPPORTED_POLICIES = ("act", "diffusion")
DEFAULT_OPSET = 18
# Largest |graph - torch| of an fp32 export, relative to the largest |action| (+1): float reassociation
# in the exporter's fusions stays near 1e-6; a wrong graph is far off.
FP32_TOLERANCE = 1e-4
CHECK_BATCH = 2


@dataclass
class ExportResult:
    folder: Path
    manifest: ExportManifest


def _torch_dtype(name: str) -> torch.dtype:
    return {"uint8": torch.uint8, "float32": torch.float32}[name]


def check_inputs(
    inputs: Sequence[ObservationInput], stats: dict[str, Any], batch: int, seed: int = 0
) -> list[np.ndarray]:
    """Seeded observations for the export check and default calibration: uint8 noise images and state
    vectors drawn around the dataset statistics (mean ± std where known)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in inputs:
        shape = (batch, *spec.shape)
        if spec.dtype == "uint8":
            arrays.append(rng.integers(0, 256, size=shape, dtype=np.uint8))
            continue
        feature_stats = stats.get(spec.feature) or {}
        mean = np.asarray(feature_stats.get("mean", 0.0), dtype=np.float32)
        std = np.asarray(feature_stats.get("std", 1.0), dtype=np.float32)
        arrays.append((mean + std * rng.standard_normal(shape)).astype(np.float32))
    return arrays


def _export_onnx(
    module: torch.nn.Module,
    example: list[np.ndarray],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    opset: int,
) -> None:
    tensors = tuple(torch.from_numpy(a) for a in example)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with torch.no_grad():
            torch.onnx.export(
                module,
                tensors,
                str(path),
                dynamo=True,
                input_names=input_names,
                output_names=output_names,
                # forward(*tensors): one entry, the tuple of the var-positional tensors' shapes.
                dynamic_shapes=(tuple({0: batch} for _ in tensors),),
                opset_version=opset,
                external_data=False,
                optimize=True,
            )
    except Exception as error:  # the exporter raises many types; each is an export failure
        raise ExportError(
            f"torch.onnx could not export {type(module).__name__} to {path}: {error}"
        ) from error


def _ort_session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _to_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    converted = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(dst))


class _CalibrationReader:
    """ONNX Runtime's CalibrationDataReader over lists of per-input arrays (one sample per call)."""

    def __init__(self, names: list[str], samples: Iterable[list[np.ndarray]]):
        self._feeds = iter(
            [
                dict(zip(names, [a[i : i + 1] for a in arrays], strict=True))
                for arrays in samples
                for i in range(len(arrays[0]))
            ]
        )

    def get_next(self):
        return next(self._feeds, None)


def _to_int8(
    src: Path, dst: Path, names: list[str], calibration: list[list[np.ndarray]] | None, dynamic: bool
) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        if dynamic:
            quantize_dynamic(
                str(prepared), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
            )
            return
        quantize_static(
            str(prepared),
            str(dst),
            _CalibrationReader(names, calibration or []),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # The convolutions (the image backbone, most of the compute) only: quantising the
            # transformer's or the U-Net's matrix products as well cost the demo's ACT 16 points of
            # success (78% against fp32's 94%); with convolutions alone it keeps 90%.
            op_types_to_quantize=["Conv"],
        )


def _dataset_facts(
    pretrained: Path, dataset_root: Path | None
) -> tuple[list[str] | None, float | None, Path | None]:
    """Action names and fps from the training dataset's meta/info.json, when it is on this machine
    (``dataset_root``, or the root recorded in the checkpoint's train_config.json)."""
    import json

    root = dataset_root
    if root is None and (pretrained / "train_config.json").is_file():
        try:
            recorded = (
                json.loads((pretrained / "train_config.json").read_text()).get("dataset", {}).get("root")
            )
        except (OSError, ValueError, AttributeError):
            recorded = None
        root = Path(recorded) if recorded else None
    if root is None or not (root / "meta" / "info.json").is_file():
        return None, None, None
    try:
        info = json.loads((root / "meta" / "info.json").read_text())
    except (OSError, ValueError) as error:
        raise ExportError(f"{root / 'meta' / 'info.json'}: unreadable ({error})") from error
    names = (info.get("features", {}).get("action") or {}).get("names")
    if isinstance(names, dict):  # {"motors": [...]} in older datasets
        names = next(iter(names.values()), None)
    return (list(names) if isinstance(names, list) else None), info.get("fps"), root


def calibration_from_dataset(
    root: Path,
    inputs: Sequence[ObservationInput],
    n_samples: int,
    seed: int = 0,
    n_obs_steps: int | None = None,
) -> list[list[np.ndarray]]:
    """``n_samples`` frames of the dataset at ``root`` (spread over it by a seeded draw) as graph inputs:
    images back to uint8 in the graph's layout, state vectors as float32; with ``n_obs_steps``, each the
    history of the last ``n_obs_steps`` frames (the dataset's delta timestamps, padded at episode starts)."""
    from dexloop.datasets import LeRobotDataset
    from dexloop.datasets.metadata import LeRobotDatasetMetadata

    delta_timestamps = None
    if n_obs_steps:
        fps = LeRobotDatasetMetadata(root.name, root=root).fps
        delta_timestamps = {spec.feature: [i / fps for i in range(1 - n_obs_steps, 1)] for spec in inputs}
    dataset = LeRobotDataset(root.name, root=root, delta_timestamps=delta_timestamps)
    rng = np.random.default_rng(seed)
    indices = sorted(rng.choice(len(dataset), size=min(n_samples, len(dataset)), replace=False).tolist())
    samples = []
    for index in indices:
        item = dataset[index]
        arrays = []
        for spec in inputs:
            if spec.feature not in item:
                raise ExportError(
                    f"calibration dataset {root} has no feature {spec.feature!r} the policy reads"
                )
            value = item[spec.feature]
            if spec.dtype == "uint8":
                image = (value.clamp(0, 1) * 255).round().to(torch.uint8)
                if spec.layout == "HWC":
                    image = image.movedim(-3, -1)
                arrays.append(image.contiguous().numpy()[None])
            else:
                arrays.append(value.to(torch.float32).numpy()[None])
        samples.append(arrays)
    return samples


@dataclass
class _GraphJob:
    """One graph to export: the module, its named inputs and outputs, seeded check inputs and, for
    static int8, calibration feeds."""

    role: str
    module: torch.nn.Module
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    example: list[np.ndarray]
    calibration: Callable[[], list[list[np.ndarray]]] | None = None


def _observation_specs(inputs: Sequence[ObservationInput]) -> list[TensorSpec]:
    return [
        TensorSpec(s.name, [BATCH, *s.shape], s.dtype, feature=s.feature, layout=s.layout) for s in inputs
    ]


def _observation_calibration(
    inputs: Sequence[ObservationInput],
    stats: dict[str, Any],
    dataset: Path | None,
    n: int,
    n_obs_steps: int | None,
) -> list[list[np.ndarray]]:
    if dataset is None:
        return [check_inputs(inputs, stats, 1, seed=1 + s) for s in range(n)]
    return calibration_from_dataset(dataset, inputs, n, n_obs_steps=n_obs_steps)


def _act_jobs(
    policy, pre, post, image_layout, dataset, n_calibration
) -> tuple[list[_GraphJob], dict[str, Any]]:
    graph = ACTChunkGraph(policy, pre, post, image_layout).eval()
    stats = {spec.feature: _feature_stats(pre, spec.feature) for spec in graph.inputs}
    example = check_inputs(graph.inputs, stats, CHECK_BATCH)
    config = policy.config
    action_dim = config.action_feature.shape[0]
    job = _GraphJob(
        "policy",
        graph,
        _observation_specs(graph.inputs),
        [TensorSpec("action", [BATCH, config.chunk_size, action_dim], "float32", feature="action")],
        example,
        lambda: _observation_calibration(graph.inputs, stats, dataset, n_calibration, None),
    )
    fields = {
        "action_dim": action_dim,
        "chunk_size": config.chunk_size,
        "n_action_steps": config.n_action_steps,
        "temporal_ensemble_coeff": config.temporal_ensemble_coeff,
    }
    return [job], fields


def _diffusion_jobs(
    policy, pre, post, image_layout, dataset, n_calibration
) -> tuple[list[_GraphJob], dict[str, Any]]:
    from dexloop.inference.diffusion_sampler import scheduler_manifest

    config = policy.config
    encoder = DiffusionEncoderGraph(policy, pre, post, image_layout).eval()
    denoiser = DiffusionDenoiserGraph(policy).eval()
    stats = {spec.feature: _feature_stats(pre, spec.feature) for spec in encoder.inputs}
    example = check_inputs(encoder.inputs, stats, CHECK_BATCH)
    with torch.no_grad():
        cond = encoder(*(torch.from_numpy(a) for a in example)).numpy()
    action_dim = config.action_feature.shape[0]
    horizon = config.horizon
    scheduler = policy.diffusion.noise_scheduler

    def denoiser_feeds(conds: np.ndarray, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        batch = conds.shape[0]
        sample = rng.standard_normal((batch, horizon, action_dim)).astype(np.float32)
        timestep = rng.integers(0, scheduler.num_train_timesteps, size=(batch,), dtype=np.int64)
        return [sample, timestep, conds.astype(np.float32)]

    @functools.cache
    def observation_calibration() -> list[list[np.ndarray]]:
        # Read once: the encoder calibrates on these observations, the denoiser on their encodings.
        return _observation_calibration(encoder.inputs, stats, dataset, n_calibration, config.n_obs_steps)

    def denoiser_calibration() -> list[list[np.ndarray]]:
        samples = observation_calibration()
        with torch.no_grad():
            return [
                denoiser_feeds(encoder(*(torch.from_numpy(a) for a in arrays)).numpy(), seed=i)
                for i, arrays in enumerate(samples)
            ]

    cond_spec = TensorSpec("global_cond", [BATCH, int(cond.shape[-1])], "float32")
    jobs = [
        _GraphJob(
            "encoder",
            encoder,
            _observation_specs(encoder.inputs),
            [cond_spec],
            example,
            observation_calibration,
        ),
        _GraphJob(
            "denoiser",
            denoiser,
            [
                TensorSpec("sample", [BATCH, horizon, action_dim], "float32"),
                TensorSpec("timestep", [BATCH], "int64"),
                cond_spec,
            ],
            [TensorSpec("model_output", [BATCH, horizon, action_dim], "float32")],
            denoiser_feeds(cond, seed=0),
            denoiser_calibration,
        ),
    ]
    unnormalize = encoder.unnormalize_action
    fields = {
        "action_dim": action_dim,
        "chunk_size": config.n_action_steps,
        "n_action_steps": config.n_action_steps,
        "n_obs_steps": config.n_obs_steps,
        "horizon": horizon,
        "scheduler": scheduler_manifest(scheduler, config),
        "action_normalization": unnormalize.manifest_entry(),
    }
    return jobs, fields


_JOBS = {"act": _act_jobs, "diffusion": _diffusion_jobs}


def _export_job(
    job: _GraphJob, staging: Path, precision: str, opset: int
) -> tuple[GraphSpec, dict[str, float]]:
    names = [spec.name for spec in job.inputs]
    fp32_path = staging / f"{job.role}.fp32.onnx"
    _export_onnx(job.module, job.example, fp32_path, names, [spec.name for spec in job.outputs], opset)
    final = staging / f"{job.role}.onnx"
    if precision == "fp32":
        fp32_path.rename(final)
    elif precision == "fp16":
        _to_fp16(fp32_path, final)
    else:
        dynamic = precision == "int8-dynamic"
        calibration = None if dynamic or job.calibration is None else job.calibration()
        _to_int8(fp32_path, final, names, calibration, dynamic=dynamic)
    fp32_path.unlink(missing_ok=True)
    with torch.no_grad():
        expected = job.module(*(torch.from_numpy(a) for a in job.example)).numpy()
    got = _ort_session(final).run(None, dict(zip(names, job.example, strict=True)))[0]
    scale = float(np.abs(expected).max()) + 1.0
    error = float(np.abs(got - expected).max())
    if precision == "fp32" and not error <= FP32_TOLERANCE * scale:
        raise ExportError(
            f"the exported {job.role} graph's outputs differ from torch's by {error:.3g} "
            f"(tolerance {FP32_TOLERANCE * scale:.3g}); the export is not kept"
        )
    spec = GraphSpec(file=final.name, sha256=sha256_of_file(final), inputs=job.inputs, outputs=job.outputs)
    return spec, {"max_abs_error": error, "output_scale": scale}


def export_policy(
    policy_path: str | Path,
    output: str | Path,
    *,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    image_layout: str = "HWC",
    dataset_root: str | Path | None = None,
    calibration_samples: int = 64,
    overwrite: bool = False,
) -> ExportResult:
    """Exports the checkpoint at ``policy_path`` (a pretrained_model folder) to ``output`` (see the module
    docstring). Returns the folder and its manifest."""
    from dexloop.policies import PreTrainedConfig, PreTrainedPolicy, make_pre_post_processors

    if precision not in PRECISIONS:
        raise ExportError(f"precision {precision!r}: expected one of {PRECISIONS}")
    if image_layout not in IMAGE_LAYOUTS:
        raise ExportError(f"image layout {image_layout!r}: expected one of {IMAGE_LAYOUTS}")
    pretrained = Path(policy_path)
    output = Path(output)
    if output.exists() and not overwrite:
        raise ExportError(f"{output} exists; pass overwrite=True (--overwrite=true) to replace it")
    try:
        config = PreTrainedConfig.from_pretrained(pretrained)
    except PolicyError as error:
        raise ExportError(f"{pretrained}: {error}") from error
    if config.type not in SUPPORTED_POLICIES:
        raise ExportError(
            f"{pretrained}: policy type {config.type!r} cannot be exported; dexloop exports {', '.join(SUPPORTED_POLICIES)}"
        )
    config.device = "cpu"
    try:
        policy = PreTrainedPolicy.from_pretrained(pretrained, config=config)
        pre, post = make_pre_post_processors(policy.config, pretrained_path=pretrained)
    except PolicyError as error:
        raise ExportError(f"{pretrained}: {error}") from error
    policy.eval()
    action_names, fps, dataset = _dataset_facts(pretrained, Path(dataset_root) if dataset_root else None)
    if dataset_root and dataset is None:
        raise ExportError(f"{dataset_root}: not a LeRobot dataset (no meta/info.json)")
    jobs, fields = _JOBS[config.type](policy, pre, post, image_layout, dataset, calibration_samples)

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        started = time.perf_counter()
        graphs: dict[str, GraphSpec] = {}
        checks: dict[str, Any] = {"inputs": "seeded", "batch": CHECK_BATCH}
        for job in jobs:
            try:
                graphs[job.role], checks[job.role] = _export_job(job, staging, precision, opset)
            except ExportError as error:
                raise ExportError(f"{pretrained}: {error}") from error
        manifest = ExportManifest(
            policy_type=config.type,
            precision=precision,
            opset=opset,
            graphs=graphs,
            action_names=action_names,
            fps=fps,
            source={"path": str(pretrained.resolve()), "sha256": sha256_of_folder(pretrained)},
            check=checks,
            exporter=_exporter_facts(time.perf_counter() - started),
            **fields,
        )
        manifest.save(staging)
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("exported %s (%s) to %s: %s", pretrained, precision, output, checks)
    return ExportResult(output, manifest)


def _feature_stats(preprocessor, key: str) -> dict[str, Any]:
    from dexloop.policies.processors.normalize import NormalizerProcessorStep

    for step in preprocessor.steps:
        if isinstance(step, NormalizerProcessorStep):
            return {name: t.cpu().numpy() for name, t in step._tensor_stats.get(key, {}).items()}
    return {}


def _exporter_facts(export_s: float) -> dict[str, Any]:
    import onnx
    import onnxruntime

    from dexloop import __version__

    return {
        "dexloop": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "export_s": round(export_s, 2),
    }


__all__ = [
    "PRECISIONS",
    "SUPPORTED_POLICIES",
    "ExportResult",
    "calibration_from_dataset",
    "check_inputs",
    "export_policy",
]
