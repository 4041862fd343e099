"""Processor pipelines: the chains of steps that prepare a policy's inputs and finish its outputs,
saved and loaded in LeRobot's files (LeRobot's ``DataProcessorPipeline``).

A pipeline is saved as ``<name>.json`` — ``{"name": ..., "steps": [{"registry_name": ..., "config":
{...}, "state_file": ...}]}`` — plus, for each step holding tensors (the normaliser's statistics), a
flat safetensors file ``<name>_step_<i>_<registry_name>.safetensors``. Steps are found by their
registry names (``normalizer_processor``...), so pipelines written by LeRobot load here and the other
way round. Loading takes ``overrides`` keyed by registry name (``{"device_processor": {"device":
"cuda"}}``); an override matching no step, an unknown step, a missing state file are ProcessorErrors
naming the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from dexloop.errors import PolicyNotFoundError, ProcessorError
from dexloop.policies.processors.converters import (
    EnvTransition,
    TransitionKey,
    batch_to_transition,
    transition_to_batch,
)


class ProcessorStepRegistry:
    """Step classes by the names pipelines save them under."""

    _registry: ClassVar[dict[str, type]] = {}

    @classmethod
    def register(cls, name: str | None = None):
        def decorator(step_class: type) -> type:
            registration_name = name or step_class.__name__
            if registration_name in cls._registry and cls._registry[registration_name] is not step_class:
                raise ValueError(f"processor step {registration_name!r} is already registered")
            cls._registry[registration_name] = step_class
            step_class._registry_name = registration_name
            return step_class

        return decorator

    @classmethod
    def get(cls, name: str) -> type:
        if name not in cls._registry:
            raise KeyError(f"processor step {name!r} is not registered; registered: {sorted(cls._registry)}")
        return cls._registry[name]

    @classmethod
    def list(cls) -> list[str]:
        return sorted(cls._registry)


class ProcessorStep:
    """One transformation of a transition. Steps with tensors to save return them from state_dict()."""

    def __call__(self, transition: EnvTransition) -> EnvTransition:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        return None

    def reset(self) -> None:
        return None

    def transform_features(self, features: dict) -> dict:
        return features


class DataProcessorPipeline:
    """Steps applied in order to a batch (or, with other converters, to an action tensor).

    ``to_transition`` turns the input into a transition, ``to_output`` the final transition into the
    output; the defaults are the batch converters (the pre-processor's), the post-processor uses
    ``policy_action_to_transition`` / ``transition_to_policy_action``.
    """

    def __init__(
        self,
        steps: Sequence[ProcessorStep] | None = None,
        name: str = "DataProcessorPipeline",
        to_transition: Callable[[Any], EnvTransition] = batch_to_transition,
        to_output: Callable[[EnvTransition], Any] = transition_to_batch,
    ):
        self.steps = list(steps or [])
        self.name = name
        self.to_transition = to_transition
        self.to_output = to_output
        self._serialized_state_filenames: tuple[str | None, ...] | None = None

    def __class_getitem__(cls, _item):  # PolicyProcessorPipeline[dict, dict](...) as in LeRobot
        return cls

    def __call__(self, data: Any) -> Any:
        transition = self.to_transition(data)
        for step in self.steps:
            transition = step(transition)
        return self.to_output(transition)

    def step_through(self, data: Any) -> Iterable[EnvTransition]:
        transition = self.to_transition(data)
        yield transition
        for step in self.steps:
            transition = step(transition)
            yield transition

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> ProcessorStep:
        return self.steps[index]

    def reset(self) -> None:
        for step in self.steps:
            step.reset()

    def _sanitized_name(self) -> str:
        return re.sub(r"[^a-zA-Z0-9_]", "_", self.name.lower())

    def _state_filename(self, index: int, step: ProcessorStep) -> str:
        registry_name = getattr(type(step), "_registry_name", None)
        if registry_name:
            return f"{self._sanitized_name()}_step_{index}_{registry_name}.safetensors"
        return f"{self._sanitized_name()}_step_{index}.safetensors"

    def get_config(self) -> dict[str, Any]:
        """The pipeline's json content."""
        config: dict[str, Any] = {"name": self.name, "steps": []}
        for index, step in enumerate(self.steps):
            entry: dict[str, Any] = {}
            registry_name = getattr(type(step), "_registry_name", None)
            if registry_name:
                entry["registry_name"] = registry_name
            else:
                entry["class"] = f"{type(step).__module__}.{type(step).__name__}"
            entry["config"] = step.get_config()
            if step.state_dict():
                entry["state_file"] = self._state_filename(index, step)
            config["steps"].append(entry)
        return config

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """The steps' tensors by state-file name without ``.safetensors``."""
        state = {}
        for index, step in enumerate(self.steps):
            step_state = step.state_dict()
            if step_state:
                key = self._state_filename(index, step).removesuffix(".safetensors")
                state[key] = {name: tensor.clone() for name, tensor in step_state.items()}
        return state

    def save_pretrained(self, save_directory: str | Path, *, config_filename: str | None = None) -> None:
        """Writes ``<config_filename or name>.json`` and the steps' state files into the folder
        (each file written whole or not at all)."""
        from safetensors.torch import save_file

        from dexloop.datasets.durable import write_atomically

        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        config_filename = config_filename or f"{self._sanitized_name()}.json"
        for key, tensors in self.state_dict().items():
            contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
            write_atomically(
                save_directory / f"{key}.safetensors", lambda p, c=contiguous: save_file(c, str(p))
            )
        text = json.dumps(self.get_config(), indent=2)
        write_atomically(save_directory / config_filename, lambda p: p.write_text(text))

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        config_filename: str,
        *,
        overrides: dict[str, Any] | None = None,
        to_transition: Callable[[Any], EnvTransition] | None = None,
        to_output: Callable[[EnvTransition], Any] | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        **_: Any,
    ) -> DataProcessorPipeline:
        """Loads a pipeline from a checkpoint folder, a json file, or a Hub model repo."""
        from dexloop.policies.config import resolve_checkpoint_file

        source = Path(str(pretrained_model_name_or_path)).expanduser()
        if source.is_file():
            config_path = source
        else:
            try:
                config_path = resolve_checkpoint_file(
                    pretrained_model_name_or_path, config_filename, revision=revision, token=token
                )
            except PolicyNotFoundError as error:
                if source.is_dir() and (source / "model.safetensors").is_file():
                    raise PolicyNotFoundError(
                        f"{config_filename} not found in {source}: a checkpoint from before LeRobot 0.4 keeps its "
                        "normalisation inside model.safetensors; load its processors with "
                        "dexloop.policies.make_pre_post_processors(config, pretrained_path=...)"
                    ) from error
                raise
        try:
            config = json.loads(Path(config_path).read_text())
        except (OSError, ValueError) as error:
            raise ProcessorError(f"{config_path}: not a readable JSON file ({error})") from error
        pipeline = cls.from_config(
            config,
            overrides=overrides,
            to_transition=to_transition,
            to_output=to_output,
            source=config_path,
            state_loader=lambda filename: _load_state_file(
                config_path, filename, pretrained_model_name_or_path, source.is_file(), revision, token
            ),
        )
        return pipeline

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        *,
        state_dict: dict[str, dict[str, torch.Tensor]] | None = None,
        overrides: dict[str, Any] | None = None,
        to_transition: Callable[[Any], EnvTransition] | None = None,
        to_output: Callable[[EnvTransition], Any] | None = None,
        source: str | Path = "<in-memory config>",
        state_loader: Callable[[str], tuple[dict[str, torch.Tensor], Path]] | None = None,
    ) -> DataProcessorPipeline:
        """A pipeline from its json content; tensors from ``state_dict`` (keyed as state_dict()
        returns them) or read by ``state_loader`` from each step's state file."""
        if not isinstance(config, dict) or not isinstance(config.get("steps"), list):
            keys = list(config) if isinstance(config, dict) else type(config).__name__
            raise ProcessorError(
                f"{source}: not a processor pipeline configuration (no 'steps' list; got {keys})"
            )
        overrides = dict(overrides or {})
        remaining = set(overrides)
        steps: list[ProcessorStep] = []
        for index, entry in enumerate(config["steps"]):
            if not isinstance(entry, dict):
                raise ProcessorError(f"{source}: step {index} is not an object")
            step_class, step_key = _resolve_step_class(entry, source, index)
            merged = {**(entry.get("config") or {}), **(overrides.get(step_key) or {})}
            remaining.discard(step_key)
            try:
                step = step_class(**merged)
            except ProcessorError:
                raise
            except Exception as error:
                raise ProcessorError(
                    f"{source}: step {index} ({step_key}) cannot be built from config {merged}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            state_file = entry.get("state_file")
            if state_file:
                key = state_file.removesuffix(".safetensors")
                if state_dict is not None:
                    if key not in state_dict:
                        raise ProcessorError(f"{source}: no state {key!r} for step {index} ({step_key})")
                    _load_step(step, state_dict[key], Path(str(source)).parent / state_file)
                elif state_loader is not None:
                    tensors, path = state_loader(state_file)
                    _load_step(step, tensors, path)
                else:
                    raise ProcessorError(
                        f"{source}: step {index} ({step_key}) has a state file but no state was given"
                    )
            steps.append(step)
        if remaining:
            available = [
                entry.get("registry_name") or str(entry.get("class", "")).rsplit(".", 1)[-1]
                for entry in config["steps"]
            ]
            raise ProcessorError(
                f"{source}: override key(s) {sorted(remaining)} match no step; the steps are {available}"
            )
        pipeline = cls(
            steps=steps,
            name=config.get("name", "DataProcessorPipeline"),
            to_transition=to_transition or batch_to_transition,
            to_output=to_output or transition_to_batch,
        )
        pipeline._serialized_state_filenames = tuple(entry.get("state_file") for entry in config["steps"])
        return pipeline


def _resolve_step_class(entry: dict[str, Any], source, index: int) -> tuple[type, str]:
    # The steps register when their modules are imported.
    import dexloop.policies.processors.normalize
    import dexloop.policies.processors.steps  # noqa: F401

    if "registry_name" in entry:
        name = entry["registry_name"]
        try:
            return ProcessorStepRegistry.get(name), name
        except KeyError as error:
            raise ProcessorError(
                f"{source}: step {index} {name!r} is not a processor step dexloop knows "
                f"(known: {ProcessorStepRegistry.list()})"
            ) from error
    if "class" in entry:
        import importlib

        module_name, _, class_name = str(entry["class"]).rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), class_name), class_name
        except (ImportError, AttributeError, ValueError) as error:
            raise ProcessorError(
                f"{source}: step {index} class {entry['class']!r} cannot be imported ({error})"
            ) from error
    raise ProcessorError(f"{source}: step {index} has neither 'registry_name' nor 'class'")


def _load_step(step: ProcessorStep, tensors: dict[str, torch.Tensor], path: Path) -> None:
    step._state_source = str(path)  # named in the step's errors about its statistics
    step.load_state_dict(tensors)


def _load_state_file(config_path: Path, filename: str, model_id, is_file: bool, revision, token):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from dexloop.policies.config import resolve_checkpoint_file

    path = Path(config_path).parent / filename
    if not path.is_file():
        if is_file or Path(str(model_id)).expanduser().is_dir():
            raise ProcessorError(f"{path}: state file named by {config_path} is missing")
        path = resolve_checkpoint_file(model_id, filename, revision=revision, token=token)
    try:
        return load_file(str(path)), path
    except (SafetensorError, OSError) as error:
        raise ProcessorError(f"{path}: not a readable safetensors file ({error})") from error


# LeRobot spells the pipeline classes it hands to policies this way.
PolicyProcessorPipeline = DataProcessorPipeline
RobotProcessorPipeline = DataProcessorPipeline

__all__ = [
    "DataProcessorPipeline",
    "PolicyProcessorPipeline",
    "ProcessorStep",
    "ProcessorStepRegistry",
    "RobotProcessorPipeline",
    "TransitionKey",
]
