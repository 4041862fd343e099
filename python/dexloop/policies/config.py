"""The base of every policy configuration: LeRobot's ``PreTrainedConfig`` (``lerobot.configs.policies``).

A config is a draccus dataclass registered under its policy ``type`` ("act", "diffusion"), so the
same classes parse ``--policy.type=act --policy.dim_model=...`` on the command line and the
config.json of a checkpoint. config.json is written as LeRobot writes it (draccus encoding against
the base class, so ``"type"`` comes first) and read as LeRobot reads it (``type`` picks the class,
the rest is decoded into it). Unlike LeRobot, every problem with the file is a PolicyConfigError that
names the file and the key: an unknown type, a field the class does not have (a newer or older
format, never silently dropped), a value its validation refuses.
"""

import abc
import builtins
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import draccus

from dexloop import hub
from dexloop.errors import DexloopError, PolicyConfigError, PolicyNotFoundError
from dexloop.policies.types import FeatureType, PolicyFeature
from dexloop.policies.utils import (
    ACTION,
    CONFIG_NAME,
    OBS_STATE,
    auto_select_torch_device,
    is_amp_available,
    is_torch_device_available,
)

T = TypeVar("T", bound="PreTrainedConfig")
logger = logging.getLogger("dexloop.policies")

# dexloop.hub reports a repository it cannot get with the error registered for its type.
hub.NOT_FOUND_ERRORS.setdefault("model", PolicyNotFoundError)


@dataclass
class PreTrainedConfig(draccus.ChoiceRegistry, abc.ABC):  # type: ignore[misc]
    """Base configuration of a policy, with LeRobot 0.6.1's base fields.

    Args:
        n_obs_steps: how many environment steps of observations the policy sees (the current one and
            those before it).
        input_features / output_features: ``{key: PolicyFeature}`` of the inputs and outputs; left
            empty, ``make_policy`` fills them from the dataset or environment.
        device: "cuda", "cuda:0", "cpu" or "mps"; None or unavailable picks the best one here.
        use_amp: automatic mixed precision (dropped where the device has none).
        use_peft, push_to_hub, repo_id, private, tags, license: kept as LeRobot keeps them.
        pretrained_path / pretrained_revision: the checkpoint (folder or Hub repo) the weights come from.
    """

    n_obs_steps: int = 1

    input_features: dict[str, PolicyFeature] | None = field(default_factory=dict)
    output_features: dict[str, PolicyFeature] | None = field(default_factory=dict)

    device: str | None = None
    use_amp: bool = False
    use_peft: bool = False

    push_to_hub: bool = True
    repo_id: str | None = None
    private: bool | None = None
    tags: list[str] | None = None
    license: str | None = None
    pretrained_path: Path | None = None
    pretrained_revision: str | None = None

    def __post_init__(self) -> None:
        if not self.device or not is_torch_device_available(self.device):
            auto_device = auto_select_torch_device()
            if self.device:
                logger.warning("Device '%s' is not available. Switching to '%s'.", self.device, auto_device)
            self.device = auto_device.type
        if self.use_amp and not is_amp_available(self.device):
            logger.warning(
                "Automatic Mixed Precision is not available on '%s'; deactivating it.", self.device
            )
            self.use_amp = False

    @property
    def type(self) -> str:
        """The name this config class is registered under (``"act"``, ``"diffusion"``)."""
        name = self.get_choice_name(self.__class__)
        if not isinstance(name, str):
            raise TypeError(f"{self.__class__.__name__} is not registered as a policy type")
        return name

    @property
    @abc.abstractmethod
    def observation_delta_indices(self) -> list | None:
        """Frame offsets of the observations a training sample holds (None: the current frame)."""

    @property
    @abc.abstractmethod
    def action_delta_indices(self) -> list | None:
        """Frame offsets of the actions a training sample holds."""

    @property
    @abc.abstractmethod
    def reward_delta_indices(self) -> list | None:
        """Frame offsets of the rewards a training sample holds."""

    @abc.abstractmethod
    def get_optimizer_preset(self) -> Any:
        """The optimizer LeRobot trains this policy with (a dexloop.training.optimizers config)."""

    @abc.abstractmethod
    def get_scheduler_preset(self) -> Any:
        """The learning-rate schedule LeRobot trains this policy with, or None for a constant rate."""

    @abc.abstractmethod
    def validate_features(self) -> None:
        """Raises when the input/output features cannot drive this policy."""

    @property
    def robot_state_feature(self) -> PolicyFeature | None:
        for key, ft in (self.input_features or {}).items():
            if ft.type is FeatureType.STATE and key == OBS_STATE:
                return ft
        return None

    @property
    def env_state_feature(self) -> PolicyFeature | None:
        for ft in (self.input_features or {}).values():
            if ft.type is FeatureType.ENV:
                return ft
        return None

    @property
    def image_features(self) -> dict[str, PolicyFeature]:
        return {key: ft for key, ft in (self.input_features or {}).items() if ft.type is FeatureType.VISUAL}

    @property
    def action_feature(self) -> PolicyFeature | None:
        for key, ft in (self.output_features or {}).items():
            if ft.type is FeatureType.ACTION and key == ACTION:
                return ft
        return None

    def to_dict(self) -> dict[str, Any]:
        """The config as config.json holds it (``type`` first)."""
        return draccus.encode(self, PreTrainedConfig)

    def _save_pretrained(self, save_directory: Path) -> None:
        """Writes config.json into ``save_directory`` (LeRobot's encoding, 4-space indent)."""
        with open(Path(save_directory) / CONFIG_NAME, "w") as f:
            json.dump(self.to_dict(), f, indent=4)

    def save_pretrained(self, save_directory: str | Path) -> None:
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(save_directory)

    @classmethod
    def from_pretrained(
        cls: builtins.type[T],
        pretrained_name_or_path: str | Path,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        cli_overrides: list[str] | None = None,
        **_: Any,
    ) -> T:
        """Reads config.json from a checkpoint folder (or the Hub repo of that name) and returns the
        config of the class its ``type`` is registered under, with ``cli_overrides``
        (``["--dim_model=64"]``) applied as LeRobot applies them."""
        config_file = resolve_checkpoint_file(
            pretrained_name_or_path, CONFIG_NAME, revision=revision, token=token
        )
        try:
            with open(config_file) as f:
                data = json.load(f)
        except (OSError, ValueError) as error:
            raise PolicyConfigError(f"{config_file}: not a readable JSON file ({error})") from error
        return cls.from_dict(data, source=config_file, cli_overrides=cli_overrides)

    @classmethod
    def from_dict(
        cls: builtins.type[T],
        data: dict[str, Any],
        *,
        source: str | Path = CONFIG_NAME,
        cli_overrides: list[str] | None = None,
    ) -> T:
        """The config a config.json's contents describe (``source`` names the file in errors)."""
        if not isinstance(data, dict):
            raise PolicyConfigError(f"{source}: expected a JSON object, got {builtins.type(data).__name__}")
        data = dict(data)
        policy_type = data.pop("type", None)
        if policy_type is None:
            raise PolicyConfigError(f"{source}: missing 'type' field (the policy type, e.g. \"act\")")
        if policy_type not in PreTrainedConfig.get_known_choices():
            # Policy packages register their config class when imported: import them all first, so a
            # checkpoint loads whichever policy module the caller happened to import.
            from dexloop.policies.factory import available_policies

            available_policies()
        try:
            config_cls = PreTrainedConfig.get_choice_class(policy_type)
        except Exception as error:
            raise PolicyConfigError(
                f"{source}: policy type {policy_type!r} is not registered. Available policy types: "
                f"{sorted(PreTrainedConfig.get_known_choices())}"
            ) from error
        if not (isinstance(config_cls, builtins.type) and issubclass(config_cls, cls)):
            raise PolicyConfigError(
                f"{source}: type {policy_type!r} is a {config_cls.__name__}, not a {cls.__name__}"
            )
        known = {f.name for f in fields(config_cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PolicyConfigError(
                f"{source}: field(s) {unknown} are not fields of {config_cls.__name__} (type {policy_type!r}); "
                "the checkpoint was written by a LeRobot version whose config format dexloop does not read"
            )
        # draccus.parse reads the file as LeRobot does and applies command-line style overrides.
        with tempfile.NamedTemporaryFile("w", delete=False, suffix=".json") as tmp:
            json.dump(data, tmp)
            tmp_path = tmp.name
        try:
            with draccus.config_type("json"):
                return draccus.parse(config_cls, tmp_path, args=list(cli_overrides or []))
        except SystemExit as error:  # draccus' argparse exits on a bad override
            raise PolicyConfigError(f"{source}: bad override in {cli_overrides}") from error
        except Exception as error:
            # draccus wraps the config class's own error (e.g. a refused value); name that one.
            cause: BaseException = error
            while (cause.__cause__ or cause.__context__) is not None:
                cause = cause.__cause__ or cause.__context__
            detail = f"{builtins.type(error).__name__}: {error}"
            if cause is not error:
                detail = f"{detail} ({builtins.type(cause).__name__}: {cause})"
            raise PolicyConfigError(f"{source}: {detail}") from error
        finally:
            os.unlink(tmp_path)


def resolve_checkpoint_file(
    pretrained_name_or_path: str | Path,
    filename: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """The path of ``filename`` of a checkpoint: in the folder when ``pretrained_name_or_path`` is
    one, else downloaded from the Hub model repository of that name through dexloop.hub. A
    PolicyNotFoundError names the file when it is in neither."""
    model_id = str(pretrained_name_or_path)
    local = Path(model_id).expanduser()
    if local.is_dir():
        path = local / filename
        if not path.is_file():
            raise PolicyNotFoundError(f"{filename} not found in {local.resolve()}")
        return path
    if local.exists() or model_id.startswith((".", "/", "~")) or model_id.count("/") != 1:
        raise PolicyNotFoundError(
            f"{model_id}: not a checkpoint folder (looking for {filename}) and not a Hub repo id"
        )
    try:
        folder, _ = hub.download(
            model_id,
            revision=revision or "main",
            local_dir=None,
            allow_patterns=[filename],
            what=filename,
            token=token,
            repo_type="model",
        )
    except PolicyNotFoundError:
        raise
    except DexloopError as error:
        raise PolicyNotFoundError(f"{filename} of the Hub repo {model_id!r}: {error}") from error
    path = Path(folder) / filename
    if not path.is_file():
        raise PolicyNotFoundError(
            f"{filename} not found in the Hub repo {model_id!r} (revision {revision or 'main'})"
        )
    return path


__all__ = ["PreTrainedConfig", "resolve_checkpoint_file"]
