"""``Runtime``: an exported policy (dexloop.export) behind one interface, whatever runs it.

    runtime = Runtime.load("outputs/act_onnx")                     # ONNX Runtime on the CPU
    runtime = Runtime.load("outputs/act_onnx", backend="onnxruntime", device="cuda")
    runtime = Runtime.load("outputs/act_onnx", backend="torch")    # the source checkpoint, torch eager
    chunk = runtime.predict_chunk({"observation.images.top": uint8_hwc, "observation.state": state})
    action = runtime.select_action(observation)                    # the policy's queue semantics
    runtime.reset()                                                # at each episode start

Observations are keyed by the graph's input names (the robot-side keys the manifest lists) or by the
policy's feature keys; values are numpy arrays or CPU tensors, batched ``(B, ...)`` or a single sample.
Each is checked against the manifest (InferenceInputError names the input, the expected and the given
dtype or shape) before the graph sees it. Actions come back unnormalised, in the dataset's units.

Backends: ``onnxruntime`` (execution providers CPU, CUDA, TensorRT: ``device="cpu"|"cuda"|"tensorrt"``;
intra-op threads settable) and ``torch`` (the checkpoint the manifest names, through the same folded
graph module, as the reference). A backend or device that is not installed raises InferenceError
naming what to install.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dexloop.errors import ExportManifestError, InferenceError, InferenceInputError
from dexloop.export.manifest import BATCH, ExportManifest, TensorSpec
from dexloop.inference.action_queue import ChunkQueue, TemporalEnsembler
from dexloop.inference.diffusion_sampler import DiffusionSampler, NoiseSource, default_noise_source

BACKENDS = ("onnxruntime", "torch")
_ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_ORT_INSTALL = {
    "cpu": "pip install onnxruntime",
    "cuda": "pip install onnxruntime-gpu (and a CUDA runtime matching it)",
    "tensorrt": "pip install onnxruntime-gpu tensorrt (TensorRT's libraries on the library path)",
}


class _OrtBackend:
    def __init__(self, folder: Path, manifest: ExportManifest, device: str, threads: int | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise InferenceError(
                f"the onnxruntime backend needs ONNX Runtime: {_ORT_INSTALL['cpu']}"
            ) from error
        if device not in _ORT_PROVIDERS:
            raise InferenceError(f"device {device!r}: expected one of {sorted(_ORT_PROVIDERS)}")
        provider = _ORT_PROVIDERS[device]
        if provider not in ort.get_available_providers():
            raise InferenceError(
                f"ONNX Runtime {ort.__version__} here has no {provider} (it has {ort.get_available_providers()}): "
                f"{_ORT_INSTALL[device]}"
            )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        providers: list[Any] = [provider]
        if device == "tensorrt":
            cache = folder / "trt_cache"
            cache.mkdir(exist_ok=True)
            providers = [
                (
                    provider,
                    {
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(cache),
                        "trt_fp16_enable": manifest.precision == "fp16",
                    },
                ),
                "CUDAExecutionProvider",
            ]
        if device != "cpu":
            providers.append("CPUExecutionProvider")
        self.sessions = {}
        for role, graph in manifest.graphs.items():
            path = folder / graph.file
            try:
                self.sessions[role] = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as error:  # onnxruntime raises its own exception types
                raise InferenceError(
                    f"{path}: ONNX Runtime could not load the {role} graph: {error}"
                ) from error
        self.output_names = {role: [t.name for t in g.outputs] for role, g in manifest.graphs.items()}

    def run(self, role: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.sessions[role].run(self.output_names[role], feeds)


class _TorchBackend:
    """The source checkpoint's policy through the same folded modules the export traced."""

    def __init__(self, manifest: ExportManifest, device: str, threads: int | None) -> None:
        import torch

        from dexloop.export.graphs import ACTChunkGraph, DiffusionDenoiserGraph, DiffusionEncoderGraph
        from dexloop.export.manifest import sha256_of_folder
        from dexloop.policies import PreTrainedConfig, PreTrainedPolicy, make_pre_post_processors

        self.torch = torch
        source = Path(manifest.source.get("path", ""))
        if not source.is_dir():
            raise InferenceError(
                f"the torch backend runs the source checkpoint {source}, which is not on this machine"
            )
        if manifest.source.get("sha256") and sha256_of_folder(source) != manifest.source["sha256"]:
            raise ExportManifestError(
                f"{source}: the checkpoint changed since it was exported (its hash differs)"
            )
        if threads:
            torch.set_num_threads(int(threads))
        config = PreTrainedConfig.from_pretrained(source)
        config.device = device
        policy = PreTrainedPolicy.from_pretrained(source, config=config).eval()
        pre, post = make_pre_post_processors(policy.config, pretrained_path=source)
        layout = next((s.layout for s in manifest.observation_inputs if s.layout), "HWC")
        self.device = torch.device(device)
        if manifest.policy_type == "act":
            modules = {"policy": ACTChunkGraph(policy, pre, post, layout)}
        else:
            modules = {
                "encoder": DiffusionEncoderGraph(policy, pre, post, layout),
                "denoiser": DiffusionDenoiserGraph(policy),
            }
        self.graphs = {role: module.eval().to(self.device) for role, module in modules.items()}
        self.input_names = {role: [t.name for t in g.inputs] for role, g in manifest.graphs.items()}

    def run(self, role: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            tensors = [torch.from_numpy(feeds[name]).to(self.device) for name in self.input_names[role]]
            return [self.graphs[role](*tensors).cpu().numpy()]


class Runtime:
    """An exported policy ready to act (see the module docstring)."""

    def __init__(self, folder: Path, manifest: ExportManifest, backend: _OrtBackend | _TorchBackend) -> None:
        self.folder = folder
        self.manifest = manifest
        self._backend = backend
        self.inputs: list[TensorSpec] = manifest.observation_inputs
        self.n_obs_steps = manifest.n_obs_steps if manifest.policy_type == "diffusion" else None
        self._sampler = DiffusionSampler(manifest.scheduler) if self.n_obs_steps else None
        self._history: dict[str, deque[np.ndarray]] = {}
        if manifest.temporal_ensemble_coeff is not None:
            self._ensembler: TemporalEnsembler | None = TemporalEnsembler(
                manifest.temporal_ensemble_coeff, manifest.chunk_size
            )
            self._queue: ChunkQueue | None = None
        else:
            self._ensembler = None
            self._queue = ChunkQueue(manifest.n_action_steps)

    @classmethod
    def load(
        cls,
        folder: str | Path,
        backend: str = "onnxruntime",
        *,
        device: str = "cpu",
        threads: int | None = None,
    ) -> Runtime:
        folder = Path(folder)
        manifest = ExportManifest.load(folder)
        if backend == "onnxruntime":
            impl: _OrtBackend | _TorchBackend = _OrtBackend(folder, manifest, device, threads)
        elif backend == "torch":
            impl = _TorchBackend(manifest, device, threads)
        else:
            raise InferenceError(f"backend {backend!r}: expected one of {BACKENDS}")
        return cls(folder, manifest, impl)

    def reset(self) -> None:
        """Forgets queued actions (or the ensemble) and the observation history; call it when an
        episode starts."""
        if self._ensembler is not None:
            self._ensembler.reset()
        if self._queue is not None:
            self._queue.reset()
        self._history = {}

    def feeds(self, observation: Mapping[str, Any], *, history: bool = True) -> dict[str, np.ndarray]:
        """The graph's input arrays from ``observation``, checked against the manifest and batched.
        With ``history=False`` (Diffusion's single steps) the inputs lack the history axis."""
        if not isinstance(observation, Mapping):
            raise InferenceInputError(
                f"an observation is a mapping of input names to arrays, got {type(observation).__name__}"
            )
        feeds: dict[str, np.ndarray] = {}
        batch = None
        for spec in self.inputs:
            value = observation.get(spec.name)
            if value is None and spec.feature is not None:
                value = observation.get(spec.feature)
            shape = spec.shape if history or not self.n_obs_steps else [spec.shape[0], *spec.shape[2:]]
            if value is None:
                raise InferenceInputError(
                    f"{self.folder}: the observation has no {spec.name!r} ({spec.dtype} {_shape_text(shape)}); "
                    f"it has {sorted(observation)}"
                )
            array = _as_array(spec, value, shape)
            if batch is None:
                batch = array.shape[0]
            elif array.shape[0] != batch:
                raise InferenceInputError(
                    f"input {spec.name!r}: batch {array.shape[0]}, but an earlier input has batch {batch}"
                )
            feeds[spec.name] = array
        return feeds

    def predict_chunk(
        self,
        observation: Mapping[str, Any],
        *,
        noise: np.ndarray | None = None,
        num_inference_steps: int | None = None,
        step_noise: np.ndarray | None = None,
        noise_fn: NoiseSource | None = None,
    ) -> np.ndarray:
        """The unnormalised actions ``(B, chunk, action_dim)``: ACT's whole chunk; Diffusion's
        ``n_action_steps`` actions from the current step on, denoised from ``noise`` (B, horizon,
        action_dim) in ``num_inference_steps`` steps (default: the policy's), its observation inputs
        holding the last ``n_obs_steps`` steps. Noise not given is drawn by ``noise_fn(shape)`` (default:
        numpy's generator): the initial noise first, then DDPM's per-step noise, as the torch policy
        draws them, so ``noise_fn=lambda s: torch.randn(s).numpy()`` after ``torch.manual_seed``
        reproduces the torch policy's actions."""
        raw = self.run_graphs(
            self.feeds(observation),
            noise=noise,
            num_inference_steps=num_inference_steps,
            step_noise=step_noise,
            noise_fn=noise_fn,
        )
        return self.finish(raw)

    def run_graphs(
        self,
        feeds: dict[str, np.ndarray],
        *,
        noise: np.ndarray | None = None,
        num_inference_steps: int | None = None,
        step_noise: np.ndarray | None = None,
        noise_fn: NoiseSource | None = None,
    ) -> np.ndarray:
        """The graphs on checked inputs (``feeds``): ACT's unnormalised chunk, or Diffusion's whole
        denoised (normalised) horizon. ``predict_chunk`` is ``finish(run_graphs(feeds(observation)))``."""
        if self._sampler is None:
            return self._backend.run("policy", feeds)[0]
        manifest = self.manifest
        cond = self._backend.run("encoder", feeds)[0]
        shape = (cond.shape[0], manifest.horizon, manifest.action_dim)
        noise_fn = noise_fn or default_noise_source()
        if noise is None:
            noise = noise_fn(shape)
        noise = np.asarray(noise, dtype=np.float32)
        if noise.shape != shape:
            raise InferenceInputError(f"noise: shape {noise.shape}, the sampler takes {shape}")

        def denoise(sample: np.ndarray, timestep: np.ndarray) -> np.ndarray:
            feeds = {"sample": sample, "timestep": timestep, "global_cond": cond}
            return self._backend.run("denoiser", feeds)[0]

        return self._sampler.sample(denoise, noise, num_inference_steps, step_noise, noise_fn)

    def finish(self, raw: np.ndarray) -> np.ndarray:
        """``run_graphs``' output as actions: ACT's chunk as it is (unnormalised in the graph);
        Diffusion's ``n_action_steps`` from the current step on, unnormalised."""
        if self._sampler is None:
            return raw
        start = self.manifest.n_obs_steps - 1
        actions = raw[:, start : start + self.manifest.n_action_steps]
        return unnormalize(actions, self.manifest.action_normalization)

    def select_action(self, observation: Mapping[str, Any], **sampling: Any) -> np.ndarray:
        """The next action ``(B, action_dim)`` for this step's observation: from the queue of the last
        chunk, a new chunk when it is empty (or, with temporal ensembling, a new chunk blended in every
        call). Diffusion keeps the last ``n_obs_steps`` observations (the first repeated until there
        are enough), as DiffusionPolicy's queues do; ``sampling`` goes to ``predict_chunk``."""
        if self._sampler is not None:
            step = self.feeds(observation, history=False)
            for name, array in step.items():
                queue = self._history.get(name)
                if queue is None:
                    queue = self._history[name] = deque([array] * self.n_obs_steps, maxlen=self.n_obs_steps)
                else:
                    queue.append(array)
            history = {name: np.stack(list(queue), axis=1) for name, queue in self._history.items()}
            return self._queue.next(lambda: self.predict_chunk(history, **sampling))
        if self._ensembler is not None:
            return self._ensembler.update(self.predict_chunk(observation))
        return self._queue.next(lambda: self.predict_chunk(observation))


def unnormalize(actions: np.ndarray, entry: dict[str, Any] | None) -> np.ndarray:
    """The inverse of the normaliser's formula (a manifest's ``action_normalization``), in numpy."""
    if not entry or entry["mode"] == "IDENTITY":
        return actions
    low = np.asarray(entry["low"], dtype=np.float32)
    high = np.asarray(entry["high"], dtype=np.float32)
    if entry["mode"] == "MEAN_STD":
        return (actions * high + low).astype(np.float32)
    denom = high - low
    denom = np.where(denom == 0, np.float32(entry["eps"]), denom)
    return ((actions + 1) / 2 * denom + low).astype(np.float32)


def _shape_text(shape: list[int | str]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _as_array(spec: TensorSpec, value: Any, shape: list[int | str]) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype != np.dtype(spec.dtype):
        raise InferenceInputError(
            f"input {spec.name!r}: dtype {array.dtype}, the graph takes {spec.dtype} {_shape_text(shape)}"
            + (" (camera images as uint8, 0-255)" if spec.dtype == "uint8" else "")
        )
    sample_shape = [d for d in shape if d != BATCH]
    if list(array.shape) == sample_shape:
        array = array[None]
    if array.ndim != len(shape) or list(array.shape[1:]) != sample_shape:
        raise InferenceInputError(
            f"input {spec.name!r}: shape {tuple(array.shape)}, the graph takes {_shape_text(shape)}"
            + (f" ({spec.layout})" if spec.layout else "")
        )
    return np.ascontiguousarray(array)


__all__ = ["BACKENDS", "Runtime", "unnormalize"]
