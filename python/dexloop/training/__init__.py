"""Training of dexloop policies the way LeRobot's ``lerobot-train`` trains them.

``optimizers`` and ``schedulers`` hold LeRobot's optimizer and LR-scheduler configuration registries
(policies' training presets are built from them); ``config`` the draccus ``TrainPipelineConfig``
with LeRobot's flags; ``train`` the loop (``train(parse_train_config(argv))``), with ``data`` (dataset,
sampler, per-process batches), ``checkpoints`` (LeRobot's checkpoint tree, generator state) and
``metrics`` (metrics.jsonl, the loss curve). This package's ``__init__`` imports only the two
configuration modules, so policy configurations can import their presets from here without
importing the training loop or the dataset reader.
"""

from dexloop.training.optimizers import (
    AdamConfig,
    AdamWConfig,
    MultiAdamConfig,
    OptimizerConfig,
    SGDConfig,
    load_optimizer_state,
    save_optimizer_state,
)
from dexloop.training.schedulers import (
    ConstantWithWarmupSchedulerConfig,
    CosineAnnealingWithWarmupSchedulerConfig,
    CosineDecayWithWarmupSchedulerConfig,
    DiffuserSchedulerConfig,
    LRSchedulerConfig,
    VQBeTSchedulerConfig,
    load_scheduler_state,
    save_scheduler_state,
)

__all__ = [
    "AdamConfig",
    "AdamWConfig",
    "ConstantWithWarmupSchedulerConfig",
    "CosineAnnealingWithWarmupSchedulerConfig",
    "CosineDecayWithWarmupSchedulerConfig",
    "DiffuserSchedulerConfig",
    "LRSchedulerConfig",
    "MultiAdamConfig",
    "OptimizerConfig",
    "SGDConfig",
    "VQBeTSchedulerConfig",
    "load_optimizer_state",
    "load_scheduler_state",
    "save_optimizer_state",
    "save_scheduler_state",
]
