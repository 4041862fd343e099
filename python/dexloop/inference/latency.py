"""Latency of a policy's action-chunk call, per stage, for each way dexloop can run it.

Variants (``VARIANTS``): ``lerobot`` (LeRobot's own policy and processor classes on the checkpoint,
where LeRobot is installed: the baseline), ``torch`` (the checkpoint in torch eager: LeRobot's pre-processor, then
``predict_action_chunk``, then the post-processor, as LeRobot's own deployment path runs it),
``torch-compile`` (the same with the model's forward under ``torch.compile``), ``ort-fp32`` /
``ort-int8`` / ``ort-fp16`` (the export run by ONNX Runtime on the CPU), ``ort-cuda`` and
``ort-tensorrt`` (on a GPU). Each call starts from what a robot gives: uint8 HWC camera images and
the state vector, one observation per batch item. Stages:

- ``preprocess``: torch: uint8 HWC -> float CHW in [0, 1], batching, normalisation (the processors);
  runtimes: the input checks and batching of ``Runtime.feeds``;
- ``inference``: the model (for Diffusion, the encoder and every denoising step);
- ``postprocess``: unnormalisation (torch: the post-processor; ONNX: folded into the graph, or for
  Diffusion the runtime's numpy step);
- ``call``: the whole call, timed on its own.

Every variant runs in its own child process (the first touch of a backend does not slow another, and
its peak resident memory, VmHWM, is its own), ``warmup`` calls first, then ``calls`` timed calls;
p50 / p90 / p99 / max per stage in milliseconds.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dexloop.errors import InferenceError

VARIANTS = (
    "lerobot",
    "torch",
    "torch-compile",
    "ort-fp32",
    "ort-fp16",
    "ort-int8",
    "ort-cuda",
    "ort-tensorrt",
)
STAGES = ("preprocess", "inference", "postprocess", "call")
_PRECISION = {
    "ort-fp32": "fp32",
    "ort-fp16": "fp16",
    "ort-int8": "int8",
    "ort-cuda": "fp32",
    "ort-tensorrt": "fp16",
}
_DEVICE = {"ort-cuda": "cuda", "ort-tensorrt": "tensorrt"}


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "mean": float(ms.mean()),
    }


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM), where /proc tells it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def robot_observations(inputs: list[dict[str, Any]], batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded robot-side observations: uint8 images in the graph's layout, float32 vectors."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec in inputs:
        shape = (batch, *[d for d in spec["shape"] if d != "batch"])
        if spec["dtype"] == "uint8":
            out[spec["name"]] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        else:
            out[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
    return out


def _time_stages(stages: list[Callable[[Any], Any]], first: Any, calls: int, warmup: int) -> dict[str, Any]:
    """Runs the stage chain ``calls + warmup`` times; per-stage and whole-call times of the timed ones."""
    per_stage: list[list[float]] = [[] for _ in stages]
    whole: list[float] = []
    for index in range(warmup + calls):
        value = first
        start = time.perf_counter()
        marks = [start]
        for stage in stages:
            value = stage(value)
            marks.append(time.perf_counter())
        if index >= warmup:
            whole.append(marks[-1] - start)
            for k in range(len(stages)):
                per_stage[k].append(marks[k + 1] - marks[k])
    return {"stages": per_stage, "call": whole}


def _torch_chain(policy_path: Path, compile_model: bool, threads: int | None, lerobot: bool = False):
    import torch

    if threads:
        torch.set_num_threads(threads)
    if lerobot:  # the baseline: LeRobot's own classes on the same checkpoint
        try:
            from lerobot.configs.policies import PreTrainedConfig
            from lerobot.policies.factory import get_policy_class, make_pre_post_processors
        except ImportError as error:
            raise InferenceError(
                "the lerobot variant needs LeRobot installed (pip install lerobot)"
            ) from error
        config = PreTrainedConfig.from_pretrained(policy_path)
        policy = get_policy_class(config.type).from_pretrained(policy_path).eval()
    else:
        from dexloop.policies import PreTrainedPolicy, make_pre_post_processors

        policy = PreTrainedPolicy.from_pretrained(policy_path).eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=policy_path)
    if compile_model:
        target = policy.model if hasattr(policy, "model") else policy.diffusion.unet
        target.forward = torch.compile(target.forward)
    image_keys = set(policy.config.image_features)

    def preprocess(obs):
        batch = {}
        for key, value in obs.items():
            tensor = torch.from_numpy(value)
            if key in image_keys:
                tensor = tensor.permute(0, 3, 1, 2).to(torch.float32) / 255
            batch[key] = tensor
        return pre(batch)

    def inference(batch):
        with torch.inference_mode():
            if hasattr(policy, "_queues"):
                # Diffusion predicts from its observation queues: emptied, select_action fills them with
                # this observation and denoises a new chunk, as at an episode's first step.
                policy.reset()
                return policy.select_action(batch)
            return policy.predict_action_chunk(batch)

    def postprocess(actions):
        return post(actions)

    return [preprocess, inference, postprocess]


def _runtime_chain(export_dir: Path, device: str, threads: int | None):
    from dexloop.inference import Runtime
    from dexloop.inference.diffusion_sampler import default_noise_source

    runtime = Runtime.load(export_dir, device=device, threads=threads)
    noise_fn = default_noise_source(0)

    def preprocess(obs):
        if runtime.n_obs_steps:  # the first step of an episode: its observation repeated as the history
            obs = {k: np.repeat(v[:, None], runtime.n_obs_steps, axis=1) for k, v in obs.items()}
        return runtime.feeds(obs)

    def inference(feeds):
        return runtime.run_graphs(feeds, noise_fn=noise_fn)

    return [preprocess, inference, runtime.finish]


def _measure_child(
    queue,
    variant: str,
    policy_path: str,
    export_dir: str | None,
    batch: int,
    calls: int,
    warmup: int,
    threads: int | None,
) -> None:
    try:
        manifest = json.loads((Path(export_dir) / "dexloop_export.json").read_text()) if export_dir else None
        inputs = manifest_inputs(manifest) if manifest else None
        observation = robot_observations(inputs, batch)
        if variant in ("torch", "torch-compile", "lerobot"):
            stages = _torch_chain(
                Path(policy_path), variant == "torch-compile", threads, lerobot=variant == "lerobot"
            )
        else:
            stages = _runtime_chain(Path(export_dir), _DEVICE.get(variant, "cpu"), threads)
        timings = _time_stages(stages, observation, calls, warmup)
        result = {
            name: percentiles(samples) for name, samples in zip(STAGES, timings["stages"], strict=False)
        }
        result["call"] = percentiles(timings["call"])
        result["peak_rss_mb"] = peak_rss_mb()
        queue.put(("ok", result))
    except BaseException as error:  # reported to the parent, which names the variant
        queue.put(("error", f"{type(error).__name__}: {error}"))


def manifest_inputs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The observation inputs of an export manifest (dict form), without Diffusion's history axis."""
    role = "policy" if manifest["policy_type"] == "act" else "encoder"
    inputs = []
    for spec in manifest["graphs"][role]["inputs"]:
        shape = list(spec["shape"])
        if manifest["policy_type"] == "diffusion":
            shape = [shape[0], *shape[2:]]
        inputs.append({**spec, "shape": shape})
    return inputs


def measure_variant(
    variant: str,
    policy_path: Path,
    export_dir: Path,
    *,
    batch: int = 1,
    calls: int = 1000,
    warmup: int = 20,
    threads: int | None = None,
    timeout_s: float = 3600,
) -> dict[str, Any]:
    """The latency of ``variant`` (see the module docstring) measured in a child process."""
    if variant not in VARIANTS:
        raise InferenceError(f"variant {variant!r}: expected one of {VARIANTS}")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(
        target=_measure_child,
        args=(queue, variant, str(policy_path), str(export_dir), batch, calls, warmup, threads),
    )
    child.start()
    try:
        status, payload = queue.get(timeout=timeout_s)
    except Exception as error:
        child.kill()
        raise InferenceError(
            f"latency of {variant}: the measuring process gave no result ({error})"
        ) from error
    finally:
        child.join(timeout=30)
    if status != "ok":
        raise InferenceError(f"latency of {variant}: {payload}")
    return payload


def export_for(variant: str, policy_path: Path, workdir: Path, dataset_root: Path | None = None) -> Path:
    """The export a runtime variant runs (made once per precision in ``workdir``)."""
    from dexloop.export import export_policy

    precision = _PRECISION.get(variant, "fp32")
    folder = workdir / f"onnx_{precision}"
    if not (folder / "dexloop_export.json").is_file():
        export_policy(policy_path, folder, precision=precision, dataset_root=dataset_root, overwrite=True)
    return folder


def model_size_mb(variant: str, policy_path: Path, export_dir: Path) -> float:
    if variant.startswith("torch") or variant == "lerobot":
        return (policy_path / "model.safetensors").stat().st_size / 1e6
    return sum(p.stat().st_size for p in export_dir.glob("*.onnx")) / 1e6


def run(
    policy_path: Path,
    variants: list[str],
    batch_sizes: list[int],
    output_dir: Path,
    *,
    calls: int = 1000,
    warmup: int = 20,
    threads: int | None = None,
    dataset_root: Path | None = None,
    baseline: str | None = None,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Measures every variant at every batch size; writes ``latency.json`` (and ``latency.png`` where
    matplotlib is installed) to ``output_dir``; returns the report. ``baseline`` (default: the first
    variant) is what the ratios compare with."""
    import platform

    from dexloop.datasets.durable import write_atomically

    policy_path = Path(policy_path)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((policy_path / "config.json").read_text())
    baseline = baseline or variants[0]
    rows = []
    for variant in variants:
        export_dir = (
            None
            if variant in ("torch", "torch-compile", "lerobot")
            else export_for(variant, policy_path, output_dir, dataset_root)
        )
        manifest_dir = export_dir or export_for("ort-fp32", policy_path, output_dir, dataset_root)
        for batch in batch_sizes:
            if progress:
                progress(f"{variant} batch {batch}: {warmup} + {calls} calls")
            result = measure_variant(
                variant, policy_path, manifest_dir, batch=batch, calls=calls, warmup=warmup, threads=threads
            )
            rows.append(
                {
                    "variant": variant,
                    "batch": batch,
                    **result,
                    "model_mb": model_size_mb(variant, policy_path, manifest_dir),
                }
            )
    for row in rows:
        base = next((r for r in rows if r["variant"] == baseline and r["batch"] == row["batch"]), None)
        row["p50_vs_baseline"] = row["call"]["p50"] / base["call"]["p50"] if base else None
    report = {
        "policy": {"path": str(policy_path), "type": config.get("type")},
        "calls": calls,
        "warmup": warmup,
        "threads": threads or cpu_count(),
        "baseline": baseline,
        "host": {"machine": platform.machine(), "processor": platform.processor(), "cpus": cpu_count()},
        "rows": rows,
    }
    plot = _plot(report, output_dir / "latency.png")
    if plot:
        report["plot"] = str(plot)
    write_atomically(output_dir / "latency.json", lambda path: path.write_text(json.dumps(report, indent=2)))
    return report


def format_table(report: dict[str, Any]) -> str:
    header = f"{'variant':<14} {'batch':>5} " + " ".join(f"{s + ' p50':>15}" for s in STAGES)
    header += f" {'call p90':>9} {'call p99':>9} {'call max':>9} {'vs ' + report['baseline']:>12} {'rss MB':>7} {'model MB':>8}"
    lines = [header]
    for row in report["rows"]:
        cells = " ".join(f"{row[s]['p50']:>12.2f} ms" for s in STAGES)
        ratio = f"{row['p50_vs_baseline']:>11.2f}x" if row["p50_vs_baseline"] is not None else f"{'':>12}"
        rss = f"{row['peak_rss_mb']:>7.0f}" if row.get("peak_rss_mb") else f"{'':>7}"
        lines.append(
            f"{row['variant']:<14} {row['batch']:>5} {cells} {row['call']['p90']:>9.2f} {row['call']['p99']:>9.2f} "
            f"{row['call']['max']:>9.2f} {ratio} {rss} {row['model_mb']:>8.1f}"
        )
    return "\n".join(lines)


def _plot(report: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    batches = sorted({row["batch"] for row in report["rows"]})
    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4), squeeze=False)
    for ax, batch in zip(axes[0], batches, strict=True):
        rows = [r for r in report["rows"] if r["batch"] == batch]
        names = [r["variant"] for r in rows]
        bottom = np.zeros(len(rows))
        for stage in ("preprocess", "inference", "postprocess"):
            values = np.array([r[stage]["p50"] for r in rows])
            ax.bar(names, values, bottom=bottom, label=stage)
            bottom += values
        ax.errorbar(
            names,
            [r["call"]["p50"] for r in rows],
            yerr=[[0] * len(rows), [r["call"]["p99"] - r["call"]["p50"] for r in rows]],
            fmt="none",
            ecolor="black",
            capsize=4,
            label="call p50 to p99",
        )
        ax.set_title(f"{report['policy']['type']} batch {batch}: p50 per stage (ms)")
        ax.set_ylabel("ms")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


__all__ = [
    "STAGES",
    "VARIANTS",
    "export_for",
    "format_table",
    "manifest_inputs",
    "measure_variant",
    "model_size_mb",
    "peak_rss_mb",
    "percentiles",
    "robot_observations",
    "run",
]
