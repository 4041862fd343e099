"""Environment configs for evaluation: LeRobot 0.6.1's ``EnvConfig`` registry and ``make_env``.

``dexloop eval --env.type=<type>`` picks one of the draccus choices registered here, as
``lerobot-eval`` does from ``lerobot.envs.configs``:

* ``pusht``: LeRobot's ``PushtEnv`` (gym-pusht's ``PushT-v0``, LeRobot's own CPU benchmark) with
  LeRobot's fields, defaults, ``features`` and ``features_map``, so a LeRobot PushT checkpoint meets
  the same observations and the same episodes for the same seeds;
* ``so101_push``: dexloop's simulated SO-101 (:mod:`dexloop.envs.so101_push`), described the same
  way (``observation.state`` and ``action`` of six ``<motor>.pos``, a top and a wrist camera).

A config's ``features`` are the environment's raw observations ({env key: PolicyFeature}, images
channels last) and ``features_map`` names their policy keys, LeRobot's convention; ``make_env``
builds the gymnasium vector env of ``n_envs`` copies exactly as LeRobot's ``create_envs`` does
(``SyncVectorEnv``, or ``AsyncVectorEnv`` in forkserver processes when asked for and more than one
env, autoreset in the same step), so rollouts, seeds and episode ends are LeRobot's. The result is
LeRobot's ``{suite: {task_id: vector env}}`` mapping.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from typing import Any

import draccus
import gymnasium as gym

from dexloop.errors import EnvError
from dexloop.policies.types import FeatureType, PolicyFeature

from . import ENV_ID, FEATURES_MAP
from .so101_push import CAMERAS, EPISODE_LENGTH, FPS, IMAGE_SIZE

# LeRobot's observation / action keys (lerobot.utils.constants).
ACTION = "action"
OBS_STATE = "observation.state"
OBS_ENV_STATE = "observation.environment_state"
OBS_IMAGE = "observation.image"
OBS_IMAGES = "observation.images"


class TaskAttributes(gym.Wrapper):
    """Gives every env ``task`` and ``task_description`` (the env's own, else empty strings).

    Rollouts ask each sub-env for its task text, and LeRobot falls back to empty strings when an env
    has none (gym-pusht's). In an ``AsyncVectorEnv`` a missing attribute is not a mere error: the
    worker process that raised it shuts down. Answering for such envs keeps the texts LeRobot's and
    the workers alive."""

    def _own(self, name: str) -> str:
        try:
            return self.env.get_wrapper_attr(name)
        except AttributeError:
            return ""

    @property
    def task(self) -> str:
        return self._own("task")

    @property
    def task_description(self) -> str:
        return self._own("task_description")


@dataclass
class EnvConfig(draccus.ChoiceRegistry, abc.ABC):
    """Base of every environment config (LeRobot's fields and defaults)."""

    task: str | None = None
    fps: int = 30
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(default_factory=dict)
    max_parallel_tasks: int = 1
    disable_env_checker: bool = True

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)

    @property
    def package_name(self) -> str:
        """The package that registers the gymnasium id, imported when the id is not known yet."""
        return f"gym_{self.type}"

    @property
    def gym_id(self) -> str:
        return f"{self.package_name}/{self.task}"

    @property
    @abc.abstractmethod
    def gym_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``gymnasium.make`` for one env."""

    def _ensure_registered(self) -> None:
        if self.gym_id in gym.registry:
            return
        try:
            importlib.import_module(self.package_name)
        except ModuleNotFoundError as error:
            raise EnvError(
                f"env type {self.type!r} needs the package {self.package_name!r} (for gymnasium id "
                f"{self.gym_id!r}), which is not installed: {error}"
            ) from error
        if self.gym_id not in gym.registry:
            raise EnvError(
                f"gymnasium id {self.gym_id!r} of env type {self.type!r} is not registered even after "
                f"importing {self.package_name!r} (is --env.task={self.task!r} right?)"
            )

    def make_one(self) -> gym.Env:
        """One environment, as each copy of the vector env is made."""
        self._ensure_registered()
        return TaskAttributes(
            gym.make(self.gym_id, disable_env_checker=self.disable_env_checker, **self.gym_kwargs)
        )

    def create_envs(
        self, n_envs: int, use_async_envs: bool = False
    ) -> dict[str, dict[int, gym.vector.VectorEnv]]:
        """``{type: {0: vector env of n_envs copies}}``: asynchronous (forkserver worker processes)
        only when asked for and ``n_envs > 1``; sub-envs reset themselves in the step that ends their
        episode (``AutoresetMode.SAME_STEP``, the episode's last info under ``final_info``)."""
        self._ensure_registered()
        env_fns = [self.make_one for _ in range(n_envs)]
        kwargs: dict[str, Any] = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        if use_async_envs and n_envs > 1:
            vec: gym.vector.VectorEnv = gym.vector.AsyncVectorEnv(env_fns, context="forkserver", **kwargs)
        else:
            vec = gym.vector.SyncVectorEnv(env_fns, **kwargs)
        return {self.type: {0: vec}}


@EnvConfig.register_subclass("pusht")
@dataclass
class PushtEnv(EnvConfig):
    """LeRobot's PushT (gym-pusht). ``observation_height`` / ``observation_width`` describe the
    images in ``features`` as LeRobot's config does; gym-pusht itself renders observations at its
    own 96 x 96 (they are not passed to it, as in LeRobot), the size LeRobot's PushT policies take."""

    task: str | None = "PushT-v0"
    fps: int = 10
    episode_length: int = 300
    obs_type: str = "pixels_agent_pos"
    render_mode: str = "rgb_array"
    visualization_width: int = 384
    visualization_height: int = 384
    observation_height: int = 384
    observation_width: int = 384
    features: dict[str, PolicyFeature] = field(
        default_factory=lambda: {
            ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(2,)),
            "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(2,)),
        }
    )
    features_map: dict[str, str] = field(
        default_factory=lambda: {
            ACTION: ACTION,
            "agent_pos": OBS_STATE,
            "environment_state": OBS_ENV_STATE,
            "pixels": OBS_IMAGE,
        }
    )

    def __post_init__(self) -> None:
        if self.obs_type == "pixels_agent_pos":
            self.features["pixels"] = PolicyFeature(
                type=FeatureType.VISUAL, shape=(self.observation_height, self.observation_width, 3)
            )
        elif self.obs_type == "environment_state_agent_pos":
            self.features["environment_state"] = PolicyFeature(type=FeatureType.ENV, shape=(16,))

    @property
    def gym_kwargs(self) -> dict[str, Any]:
        return {
            "obs_type": self.obs_type,
            "render_mode": self.render_mode,
            "visualization_width": self.visualization_width,
            "visualization_height": self.visualization_height,
            "max_episode_steps": self.episode_length,
        }


@EnvConfig.register_subclass("so101_push")
@dataclass
class SO101PushEnvConfig(EnvConfig):
    """dexloop's simulated SO-101 pushing a cube (:class:`dexloop.envs.SO101PushEnv`):
    ``observation.state`` (6 ``<motor>.pos``), ``observation.images.top`` / ``.wrist`` and a
    6-D ``action``, at the env's fps; ``obs_type="agent_pos"`` leaves the cameras out."""

    task: str | None = "SO101Push-v0"
    fps: int = FPS
    episode_length: int = EPISODE_LENGTH
    obs_type: str = "pixels_agent_pos"
    render_mode: str = "rgb_array"
    observation_height: int = IMAGE_SIZE[0]
    observation_width: int = IMAGE_SIZE[1]
    cameras: list[str] = field(default_factory=lambda: list(CAMERAS))
    use_degrees: bool = True
    visualization_height: int = 240
    visualization_width: int = 320
    features: dict[str, PolicyFeature] = field(
        default_factory=lambda: {
            ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(6,)),
            "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(6,)),
        }
    )
    features_map: dict[str, str] = field(default_factory=lambda: dict(FEATURES_MAP))

    def __post_init__(self) -> None:
        unknown = [name for name in self.cameras if name not in CAMERAS]
        if unknown or not self.cameras:
            raise EnvError(
                f"env.cameras must be a non-empty subset of {list(CAMERAS)}, got {list(self.cameras)}"
            )
        if self.obs_type == "pixels_agent_pos":
            for camera in self.cameras:
                key = f"pixels/{camera}"
                self.features[key] = PolicyFeature(
                    type=FeatureType.VISUAL, shape=(self.observation_height, self.observation_width, 3)
                )
                self.features_map.setdefault(key, f"{OBS_IMAGES}.{camera}")
        elif self.obs_type != "agent_pos":
            raise EnvError(f"env.obs_type must be 'pixels_agent_pos' or 'agent_pos', got {self.obs_type!r}")

    @property
    def package_name(self) -> str:
        return "dexloop.envs"

    @property
    def gym_id(self) -> str:
        return ENV_ID if self.task == "SO101Push-v0" else f"dexloop/{self.task}"

    @property
    def gym_kwargs(self) -> dict[str, Any]:
        return {
            "obs_type": self.obs_type,
            "render_mode": self.render_mode,
            "image_size": (self.observation_height, self.observation_width),
            "cameras": tuple(self.cameras),
            "use_degrees": self.use_degrees,
            "episode_length": self.episode_length,
            "visualization_size": (self.visualization_height, self.visualization_width),
            "max_episode_steps": self.episode_length,
        }


def available_envs() -> list[str]:
    """The registered env types."""
    return sorted(EnvConfig.get_known_choices())


def make_env_config(env_type: str, **kwargs: Any) -> EnvConfig:
    """The config of env type ``env_type`` with ``kwargs`` for its fields (EnvError if unknown)."""
    if env_type not in EnvConfig.get_known_choices():
        raise EnvError(f"Environment type {env_type!r} is not registered. Available: {available_envs()}")
    try:
        return EnvConfig.get_choice_class(env_type)(**kwargs)
    except TypeError as error:
        raise EnvError(f"env type {env_type!r}: {error}") from error


def make_env(
    cfg: EnvConfig, n_envs: int = 1, use_async_envs: bool = False
) -> dict[str, dict[int, gym.vector.VectorEnv]]:
    """The vector env(s) of ``cfg``: ``{suite: {task_id: vector env}}`` (one suite, task 0, for the
    single-task envs here), with ``n_envs`` copies run side by side."""
    if not isinstance(cfg, EnvConfig):
        raise EnvError(f"make_env needs an EnvConfig, got {type(cfg).__name__}")
    if n_envs < 1:
        raise EnvError(f"n_envs must be at least 1, got {n_envs}")
    return cfg.create_envs(n_envs=n_envs, use_async_envs=use_async_envs)


def close_envs(envs: Any) -> None:
    """Closes every vector env of a ``make_env`` mapping (or one env)."""
    if isinstance(envs, dict):
        for value in envs.values():
            close_envs(value)
    elif hasattr(envs, "close"):
        envs.close()


__all__ = [
    "EnvConfig",
    "PushtEnv",
    "SO101PushEnvConfig",
    "TaskAttributes",
    "available_envs",
    "close_envs",
    "make_env",
    "make_env_config",
]
