"""Learning-rate scheduler configurations of LeRobot's training pipeline, and their saved state.

``LRSchedulerConfig`` is a draccus choice registry with LeRobot 0.6.1's names and fields:
``diffuser`` (the schedules of diffusers' ``get_scheduler``, Diffusion Policy's preset is its
``cosine`` with 500 warmup steps), ``vqbet``, ``constant_with_warmup``,
``cosine_annealing_with_warmup`` and ``cosine_decay_with_warmup`` (pi0 / SmolVLA's preset, which
shrinks warmup and decay proportionally when training is shorter than the decay). ``build(optimizer,
num_training_steps)`` returns a torch ``LambdaLR`` stepped once per optimizer step.

diffusers is not a dependency: its schedule functions are restated here with the same arithmetic
in the same order, so the learning rates are bit-identical to LeRobot's (tests compare them against
values LeRobot 0.6.1 computed). Schedule functions are closures, as in LeRobot, so
``scheduler.state_dict()`` and the ``scheduler_state.json`` written from it are LeRobot's too.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import draccus
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from dexloop.errors import TrainingConfigError, TrainingStateError
from dexloop.training._files import write_json_file

SCHEDULER_STATE = "scheduler_state.json"

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class LRSchedulerConfig(draccus.ChoiceRegistry, abc.ABC):
    num_warmup_steps: int | None

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)

    @abc.abstractmethod
    def build(self, optimizer: Optimizer, num_training_steps: int) -> LRScheduler | None:
        """The scheduler for `optimizer` over a run of `num_training_steps` optimizer steps."""


# The schedule names of diffusers' get_scheduler (diffusers.optimization.SchedulerType).
DIFFUSERS_SCHEDULE_NAMES = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "piecewise_constant",
)


@LRSchedulerConfig.register_subclass("diffuser")
@dataclasses.dataclass
class DiffuserSchedulerConfig(LRSchedulerConfig):
    """One of diffusers' named schedules, with diffusers' defaults for what LeRobot does not pass:
    ``cosine`` is a half cosine (0.5 cycles) after a linear warmup, ``cosine_with_restarts`` one
    cycle, ``polynomial`` power 1 down to lr 1e-7."""

    name: str = "cosine"
    num_warmup_steps: int | None = None

    def build(self, optimizer: Optimizer, num_training_steps: int) -> LambdaLR:
        return LambdaLR(
            optimizer, diffusers_schedule(self.name, optimizer, self.num_warmup_steps, num_training_steps)
        )


def diffusers_schedule(
    name: str,
    optimizer: Optimizer,
    num_warmup_steps: int | None,
    num_training_steps: int | None,
    step_rules: str | None = None,
) -> Callable[[int], float]:
    """The LR multiplier of diffusers' ``get_scheduler(name, ...)`` as a function of the step,
    with the arguments LeRobot's ``diffuser`` scheduler passes (num_cycles 1, power 1)."""
    if name not in DIFFUSERS_SCHEDULE_NAMES:
        raise TrainingConfigError(
            f"scheduler.name={name!r} is not a diffusers schedule; one of {', '.join(DIFFUSERS_SCHEDULE_NAMES)}"
        )
    if name == "constant":
        return lambda _: 1
    if name == "piecewise_constant":
        if step_rules is None:
            raise TrainingConfigError(
                "scheduler.name='piecewise_constant' needs step rules ('1:10,0.1:20,0.01')"
            )
        return _piecewise_constant(step_rules)
    if num_warmup_steps is None:
        raise TrainingConfigError(f"scheduler.name={name!r} needs scheduler.num_warmup_steps")
    warmup = num_warmup_steps
    if name == "constant_with_warmup":

        def constant_with_warmup(current_step: int) -> float:
            if current_step < warmup:
                return float(current_step) / float(max(1.0, warmup))
            return 1.0

        return constant_with_warmup
    if num_training_steps is None:
        raise TrainingConfigError(f"scheduler.name={name!r} needs the number of training steps")
    total = num_training_steps
    if name == "linear":

        def linear(current_step: int) -> float:
            if current_step < warmup:
                return 1.0 * float(current_step) / float(max(1, warmup))
            remaining = float(total - current_step) / float(max(1, total - warmup))
            return 0.0 + (1.0 - 0.0) * max(0.0, remaining)

        return linear
    if name == "cosine":
        return _cosine_with_warmup(warmup, total, num_cycles=0.5)
    if name == "cosine_with_restarts":
        cycles = 1

        def cosine_with_restarts(current_step: int) -> float:
            if current_step < warmup:
                return float(current_step) / float(max(1, warmup))
            progress = float(current_step - warmup) / float(max(1, total - warmup))
            if progress >= 1.0:
                return 0.0
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(cycles) * progress) % 1.0))))

        return cosine_with_restarts
    # polynomial: decays from the optimizer's lr to lr_end, expressed as a multiplier of it.
    lr_init = optimizer.defaults["lr"]
    lr_end, power = 1e-7, 1.0
    if not lr_init > lr_end:
        raise TrainingConfigError(
            f"scheduler.name='polynomial': lr_end ({lr_end}) must be below the lr ({lr_init})"
        )

    def polynomial(current_step: int) -> float:
        if current_step < warmup:
            return float(current_step) / float(max(1, warmup))
        if current_step > total:
            return lr_end / lr_init
        pct_remaining = 1 - (current_step - warmup) / (total - warmup)
        return ((lr_init - lr_end) * pct_remaining**power + lr_end) / lr_init

    return polynomial


def _cosine_with_warmup(warmup: int, total: int, num_cycles: float) -> Callable[[int], float]:
    def cosine(current_step: int) -> float:
        if current_step < warmup:
            return float(current_step) / float(max(1, warmup))
        progress = float(current_step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))

    return cosine


def _piecewise_constant(step_rules: str) -> Callable[[int], float]:
    # "1:10,0.1:20,0.01" = multiplier 1 before step 10, 0.1 before step 20, 0.01 afterwards.
    *rules, last = step_rules.split(",")
    try:
        thresholds = sorted(
            (int(steps), float(value)) for value, steps in (rule.split(":") for rule in rules)
        )
        last_value = float(last)
    except ValueError:
        raise TrainingConfigError(f"step rules {step_rules!r} are not 'value:step,...,value'") from None

    def piecewise(current_step: int) -> float:
        for threshold, value in thresholds:
            if current_step < threshold:
                return value
        return last_value

    return piecewise


@LRSchedulerConfig.register_subclass("vqbet")
@dataclasses.dataclass
class VQBeTSchedulerConfig(LRSchedulerConfig):
    """Constant while the VQ-VAE trains, then a warmup and a cosine over the remaining steps."""

    num_warmup_steps: int
    num_vqvae_training_steps: int
    num_cycles: float = 0.5

    def build(self, optimizer: Optimizer, num_training_steps: int) -> LambdaLR:
        vqvae_steps, warmup, cycles = self.num_vqvae_training_steps, self.num_warmup_steps, self.num_cycles

        def vqbet(current_step: int) -> float:
            if current_step < vqvae_steps:
                return float(1)
            step = current_step - vqvae_steps
            if step < warmup:
                return float(step) / float(max(1, warmup))
            # As LeRobot: the cosine's span is measured from the run's start, not the VQ-VAE's end.
            progress = float(step - warmup) / float(max(1, num_training_steps - warmup))
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * progress)))

        return LambdaLR(optimizer, vqbet, -1)


@LRSchedulerConfig.register_subclass("constant_with_warmup")
@dataclasses.dataclass
class ConstantWithWarmupSchedulerConfig(LRSchedulerConfig):
    """A linear ramp from 0 to the optimizer's lr over ``num_warmup_steps``, then constant."""

    num_warmup_steps: int = 1000

    def build(self, optimizer: Optimizer, num_training_steps: int) -> LambdaLR:
        warmup = self.num_warmup_steps or 0

        def constant_with_warmup(current_step: int) -> float:
            if current_step < warmup:
                return float(current_step) / float(max(1, warmup))
            return 1.0

        return LambdaLR(optimizer, constant_with_warmup, -1)


@LRSchedulerConfig.register_subclass("cosine_annealing_with_warmup")
@dataclasses.dataclass
class CosineAnnealingWithWarmupSchedulerConfig(LRSchedulerConfig):
    """A linear warmup, then a half cosine from the lr to 0 over the remaining training steps."""

    num_warmup_steps: int

    def build(self, optimizer: Optimizer, num_training_steps: int) -> LambdaLR:
        warmup = self.num_warmup_steps

        def cosine_annealing(current_step: int) -> float:
            if current_step < warmup:
                return current_step / max(1, warmup)
            progress = (current_step - warmup) / max(1, num_training_steps - warmup)
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

        return LambdaLR(optimizer, cosine_annealing, -1)


@LRSchedulerConfig.register_subclass("cosine_decay_with_warmup")
@dataclasses.dataclass
class CosineDecayWithWarmupSchedulerConfig(LRSchedulerConfig):
    """Physical Intelligence's pi0 schedule: a linear warmup starting at ``1/(warmup+1)`` of the lr,
    then a cosine from the lr down to ``decay_lr`` at ``num_decay_steps``, flat afterwards. When the
    run is shorter than ``num_decay_steps``, warmup and decay are scaled down by
    ``num_training_steps / num_decay_steps`` so the schedule completes within the run."""

    num_warmup_steps: int
    num_decay_steps: int
    peak_lr: float
    decay_lr: float

    def build(self, optimizer: Optimizer, num_training_steps: int) -> LambdaLR:
        warmup, decay = self.num_warmup_steps, self.num_decay_steps
        if num_training_steps < self.num_decay_steps:
            scale = num_training_steps / self.num_decay_steps
            warmup, decay = int(self.num_warmup_steps * scale), num_training_steps
            logger.info(
                "LR schedule scaled by %.3f to fit %d training steps: warmup %d -> %d, decay %d -> %d",
                scale,
                num_training_steps,
                self.num_warmup_steps,
                warmup,
                self.num_decay_steps,
                decay,
            )
        alpha = self.decay_lr / self.peak_lr

        def cosine_decay_with_warmup(current_step: int) -> float:
            if current_step < warmup:
                if current_step <= 0:
                    return 1 / (warmup + 1)
                frac = 1 - current_step / warmup
                return (1 / (warmup + 1) - 1) * frac + 1
            step = min(current_step, decay)
            cosine = 0.5 * (1 + math.cos(math.pi * step / decay))
            return (1 - alpha) * cosine + alpha

        return LambdaLR(optimizer, cosine_decay_with_warmup, -1)


def save_scheduler_state(scheduler: LRScheduler, save_dir: Path) -> None:
    """Writes ``scheduler.state_dict()`` to ``save_dir/scheduler_state.json`` as LeRobot does."""
    write_json_file(Path(save_dir) / SCHEDULER_STATE, scheduler.state_dict())


def load_scheduler_state(scheduler: LRScheduler, save_dir: Path) -> LRScheduler:
    """Restores the state saved by ``save_scheduler_state`` (or LeRobot) into `scheduler`. Keys must
    be the scheduler's own, with values of the same kind and list lengths; otherwise a
    TrainingStateError names the file and the key."""
    path = Path(save_dir) / SCHEDULER_STATE
    if not path.is_file():
        raise TrainingStateError(f"{path}: scheduler state file is missing")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TrainingStateError(f"{path}: not readable JSON ({error})") from error
    current = scheduler.state_dict()
    if not isinstance(saved, dict):
        raise TrainingStateError(f"{path}: expected a JSON object")
    for key in ("base_lrs", "last_epoch"):
        if key not in saved:
            raise TrainingStateError(f"{path}: key {key!r} is missing")
    state = {}
    for key, value in current.items():
        if key not in saved:
            # A field only the running torch version has: its fresh value stands.
            state[key] = value
            continue
        state[key] = _conform(value, saved[key], path, key)
    scheduler.load_state_dict(state)
    return scheduler


def _conform(current: Any, saved: Any, path: Path, key: str) -> Any:
    if isinstance(current, list | tuple):
        if not isinstance(saved, list) or len(saved) != len(current):
            raise TrainingStateError(
                f"{path}: key {key!r} should be a list of {len(current)} (one per param group), got {saved!r}"
            )
        return type(current)(saved)
    if isinstance(current, bool) != isinstance(saved, bool) or (
        isinstance(current, int | float) and not isinstance(saved, int | float)
    ):
        raise TrainingStateError(f"{path}: key {key!r} should be like {current!r}, got {saved!r}")
    return saved


__all__ = [
    "DIFFUSERS_SCHEDULE_NAMES",
    "SCHEDULER_STATE",
    "ConstantWithWarmupSchedulerConfig",
    "CosineAnnealingWithWarmupSchedulerConfig",
    "CosineDecayWithWarmupSchedulerConfig",
    "DiffuserSchedulerConfig",
    "LRSchedulerConfig",
    "VQBeTSchedulerConfig",
    "diffusers_schedule",
    "load_scheduler_state",
    "save_scheduler_state",
]
