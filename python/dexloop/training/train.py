"""The training loop of ``dexloop train``: LeRobot 0.6.1's ``lerobot-train`` on dexloop's data loader.

Per step, as LeRobot: the next batch (camera frames uint8 -> float / 255), the policy's preprocessor
(normalisation, device), ``loss, outputs = policy(batch)`` (under autocast when ``policy.use_amp``
on CUDA), backward, gradient-norm clipping at ``optimizer.grad_clip_norm``, the optimizer step, the
scheduler step, the policy's ``update()`` hook. The optimizer and scheduler are the policy's presets
unless ``use_policy_training_preset=false``. Checkpoints go to LeRobot's tree every ``save_freq``
steps and after the last (dexloop.training.checkpoints); ``--resume=true`` restores weights,
processors, optimizer, scheduler, the generators and the data order, so the resumed run continues the
uninterrupted one's loss curve step for step. Random numbers are drawn where LeRobot draws them (the
same seed gives lerobot-train's losses), except that a resumed run restores the generators after its
loader's first draw, which is what makes it exact (LeRobot's resume is off by that draw). With
``dataset.eval_split`` and ``eval_steps`` the loss on held-out episodes is measured every
``eval_steps`` steps.

Under ``torchrun`` (WORLD_SIZE > 1) each process trains a DistributedDataParallel replica on its
share of every global batch (gloo on CPU, NCCL on CUDA); with the same global batch the loss curve is
one process's. The batch size is per process, as LeRobot's.

What a run shows and leaves: a tqdm progress bar (loss, learning rate, samples/s and the share of
step time spent waiting for data), a log line every ``log_freq`` steps, ``metrics.jsonl`` in the
output folder (one JSON object per step: loss, grad_norm, lr, dataloading_s, update_s, samples/s,
data-wait share and the policy's own loss terms) and ``loss_curve.png`` drawn from it (when
matplotlib is installed) at the end, and at checkpoints at most once a minute. The data-wait share
is the time from asking for the next batch to having it preprocessed on the device, over the whole
step's time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dexloop.errors import DatasetError, TrainingConfigError, TrainingStateError
from dexloop.training.checkpoints import (
    TRAINING_STATE_DIR,
    get_step_checkpoint_dir,
    load_rng_state,
    load_training_state,
    load_training_step_file,
    save_checkpoint,
    should_save_checkpoint,
    update_last_checkpoint,
)
from dexloop.training.config import TrainPipelineConfig
from dexloop.training.data import (
    ShardedBatchSampler,
    cycle,
    eval_indices,
    make_sampler,
    make_train_eval_datasets,
)
from dexloop.training.metrics import MetricsLog, plot_loss_curve

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
LOSS_CURVE_FILE = "loss_curve.png"


@dataclasses.dataclass
class Distributed:
    """This process's place among the processes torchrun started (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    @classmethod
    def from_environment(cls, device_type: str) -> Distributed:
        """Joins the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR ...)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if not torch.distributed.is_initialized():
            if device_type == "cuda":
                torch.cuda.set_device(local_rank)
            torch.distributed.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
            owns = True
        return cls(rank=rank, world_size=world_size, local_rank=local_rank, owns_group=owns)


@dataclasses.dataclass
class TrainResult:
    """What a finished run leaves: the output folder, its last checkpoint and logs, the step it
    reached, and its speed: samples per second and the share of step time spent waiting for data,
    over the steps this run made after its first (which also starts the loader's workers)."""

    output_dir: Path
    last_checkpoint: Path | None
    metrics_path: Path
    loss_curve_path: Path | None
    step: int
    final_loss: float | None
    steps_run: int
    samples_per_s: float
    data_wait_share: float


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _float_cameras(batch: dict[str, Any], camera_keys: list[str]) -> dict[str, Any]:
    # Frames travel as uint8 (a quarter of the bytes through the loader); the policy wants [0, 1].
    for key in camera_keys:
        value = batch.get(key)
        if isinstance(value, torch.Tensor) and value.dtype == torch.uint8:
            batch[key] = value.to(dtype=torch.float32) / 255.0
    return batch


def _scalars(outputs: Any) -> dict[str, float]:
    """The numbers of a policy's output dict worth logging (floats and one-element tensors)."""
    scalars: dict[str, float] = {}
    for key, value in (outputs or {}).items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            scalars[key] = float(value.item())
        elif isinstance(value, int | float) and not isinstance(value, bool):
            scalars[key] = float(value)
    return scalars


class _Trainer:
    """One run: everything built from the configuration, then ``run()``."""

    def __init__(self, cfg: TrainPipelineConfig, progress: bool, dist: Distributed):
        from dexloop.policies.factory import make_policy, make_pre_post_processors

        self.cfg = cfg
        self.progress = progress
        policy_cfg = cfg.trainable_config
        device = torch.device(policy_cfg.device or "cpu")
        self.dist = dist
        if device.type == "cuda" and self.dist.enabled:
            # "cuda" is this process's GPU (from_environment made it the current device).
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        if cfg.seed is not None:
            set_seed(cfg.seed)
        if device.type == "cuda":
            torch.backends.cudnn.deterministic = cfg.cudnn_deterministic
            torch.backends.cudnn.benchmark = not cfg.cudnn_deterministic
            torch.backends.cuda.matmul.allow_tf32 = True

        # The main process first: it downloads what is missing; the others then read its copy.
        if self.dist.is_main:
            self.dataset, self.eval_dataset = make_train_eval_datasets(cfg)
        self.dist.barrier()
        if not self.dist.is_main:
            self.dataset, self.eval_dataset = make_train_eval_datasets(cfg)
        self.camera_keys = list(self.dataset.meta.camera_keys)
        if not self.dataset.meta.stats and not (cfg.resume or policy_cfg.pretrained_path):
            raise DatasetError(
                f"{Path(self.dataset.root) / 'meta' / 'stats.json'}: the dataset has no statistics, which the "
                "policy's normalisation needs (recompute them, e.g. by re-recording or with LeRobot's dataset tools)"
            )

        self.policy = make_policy(policy_cfg, ds_meta=self.dataset.meta, rename_map=cfg.rename_map)
        self.dist.barrier()
        self.preprocessor, self.postprocessor = make_pre_post_processors(
            policy_cfg, pretrained_path=policy_cfg.pretrained_path, **self._processor_arguments()
        )
        params = (
            self.policy.get_optim_params() if cfg.use_policy_training_preset else self.policy.parameters()
        )
        self.optimizer = cfg.optimizer.build(params)
        if isinstance(self.optimizer, dict):
            raise TrainingConfigError(
                f"optimizer.type={cfg.optimizer.type} makes several optimizers; the policy loop trains one"
            )
        self.scheduler = cfg.scheduler.build(self.optimizer, cfg.steps) if cfg.scheduler is not None else None

        self.step = 0
        checkpoint_batch, checkpoint_processes = cfg.batch_size, self.dist.world_size
        if cfg.resume:
            recorded = load_training_step_file(cfg.checkpoint_path)
            checkpoint_batch = recorded.get("batch_size", cfg.batch_size)
            checkpoint_processes = recorded.get("num_processes", self.dist.world_size)
            if (checkpoint_batch, checkpoint_processes) != (cfg.batch_size, self.dist.world_size):
                logger.warning(
                    "resuming with batch_size=%d on %d process(es); the checkpoint was written with "
                    "batch_size=%d on %d: the data order resumes at the right epoch and offset, but the run "
                    "is no longer sample-exact",
                    cfg.batch_size,
                    self.dist.world_size,
                    checkpoint_batch,
                    checkpoint_processes,
                )
            # The generators are restored in run(), right before the first step.
            self.step = load_training_state(
                cfg.checkpoint_path, self.optimizer, self.scheduler, restore_rng=False
            )
            if self.step > cfg.steps:
                raise TrainingStateError(
                    f"{cfg.checkpoint_path}: the checkpoint is at step {self.step}, beyond steps={cfg.steps}"
                )

        self.sampler = make_sampler(self.dataset, policy_cfg, cfg.seed)
        if cfg.resume and self.step > 0:
            from dexloop.datasets.sampler import compute_sampler_state

            self.sampler.load_state_dict(
                compute_sampler_state(self.step, len(self.sampler), checkpoint_batch, checkpoint_processes)
            )
        self.dataloader = self._dataloader()
        self.eval_loader = self._eval_dataloader()

        self.model: torch.nn.Module = self.policy
        if self.dist.enabled:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.policy,
                device_ids=[self.dist.local_rank] if device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        self.use_amp = bool(getattr(policy_cfg, "use_amp", False)) and device.type == "cuda"
        if getattr(policy_cfg, "use_amp", False) and not self.use_amp and self.dist.is_main:
            logger.warning("policy.use_amp applies on CUDA only: training in float32 on %s", device.type)
        # fp16 autocast with loss scaling, the precision LeRobot's use_amp gives on CUDA.
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None

        self.output_dir = Path(cfg.output_dir)
        self._plotted_at = time.monotonic()
        self.metrics = MetricsLog(self.output_dir / METRICS_FILE, enabled=self.dist.is_main)
        if self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.metrics.start(resume_step=self.step if cfg.resume else None)

    def _processor_arguments(self) -> dict[str, Any]:
        cfg, policy_cfg = self.cfg, self.cfg.trainable_config
        stats = self.dataset.meta.stats
        arguments: dict[str, Any] = {}
        if not policy_cfg.pretrained_path or not cfg.resume:
            arguments["dataset_stats"] = stats
        if policy_cfg.pretrained_path:
            pre = {
                "device_processor": {"device": self.device.type},
                "normalizer_processor": {
                    "features": {**policy_cfg.input_features, **policy_cfg.output_features},
                    "norm_map": policy_cfg.normalization_mapping,
                },
                "rename_observations_processor": {"rename_map": cfg.rename_map},
            }
            post = {
                "unnormalizer_processor": {
                    "features": policy_cfg.output_features,
                    "norm_map": policy_cfg.normalization_mapping,
                }
            }
            # On resume the checkpoint's statistics stand; a fine-tune takes the dataset's.
            if not cfg.resume:
                pre["normalizer_processor"]["stats"] = stats
                post["unnormalizer_processor"]["stats"] = stats
            arguments["preprocessor_overrides"] = pre
            arguments["postprocessor_overrides"] = post
        return arguments

    def _dataloader(self) -> torch.utils.data.DataLoader:
        cfg = self.cfg
        workers = cfg.num_workers > 0
        batches = ShardedBatchSampler(self.sampler, cfg.batch_size, self.dist.rank, self.dist.world_size)
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=batches,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=cfg.prefetch_factor if workers else None,
            persistent_workers=cfg.persistent_workers and workers,
            multiprocessing_context=cfg.dataloader_multiprocessing_context if workers else None,
        )

    def _eval_dataloader(self) -> torch.utils.data.DataLoader | None:
        """The held-out frames in order, in batches; process r of N takes batches r, r+N, ..."""
        cfg = self.cfg
        if self.eval_dataset is None or cfg.eval_steps <= 0:
            return None
        indices = eval_indices(self.eval_dataset, cfg.max_eval_samples)
        batches = [
            indices[start : start + cfg.batch_size] for start in range(0, len(indices), cfg.batch_size)
        ]
        mine = batches[self.dist.rank :: self.dist.world_size]
        workers = cfg.num_workers > 0
        return torch.utils.data.DataLoader(
            self.eval_dataset,
            batch_sampler=mine,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=cfg.prefetch_factor if workers else None,
            persistent_workers=cfg.persistent_workers and workers,
            multiprocessing_context=cfg.dataloader_multiprocessing_context if workers else None,
        )

    def _eval_loss(self) -> float:
        """The mean loss of the held-out batches (policy in eval mode, no gradients)."""
        self.policy.eval()
        total = torch.zeros(2, dtype=torch.float64)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else contextlib.nullcontext()
        with torch.no_grad(), autocast:
            for batch in self.eval_loader:
                batch = self.preprocessor(_float_cameras(batch, self.camera_keys))
                loss, _ = self.policy(batch)
                total += torch.tensor([float(loss.item()), 1.0], dtype=torch.float64)
        self.policy.train()
        if self.dist.enabled:
            total = total.to(self.device)
            torch.distributed.all_reduce(total)
        return float(total[0] / total[1]) if total[1] > 0 else math.nan

    def _update(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        self.policy.train()
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else contextlib.nullcontext()
        with autocast:
            loss, outputs = self.model(batch)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        clip = cfg.optimizer.grad_clip_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.policy.parameters(), clip if clip > 0 else float("inf"), error_if_nonfinite=False
        )
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad()
        if self.scheduler is not None:
            self.scheduler.step()
        if callable(getattr(self.policy, "update", None)):
            self.policy.update()
        return loss.detach(), grad_norm.detach(), _scalars(outputs)

    def _reduce(self, loss: torch.Tensor, timings: list[float]) -> tuple[float, list[float]]:
        """The global batch's loss (mean over processes) and the slowest process's timings."""
        if not self.dist.enabled:
            return float(loss.item()), timings
        mean = loss.detach().float().reshape(1).clone()
        torch.distributed.all_reduce(mean)
        slowest = torch.tensor(timings, dtype=torch.float64, device=mean.device)
        torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
        return float(mean.item()) / self.dist.world_size, slowest.tolist()

    def _save(self) -> Path:
        cfg = self.cfg
        directory = get_step_checkpoint_dir(self.output_dir, cfg.steps, self.step)

        def save_pretrained(folder: Path) -> None:
            self.policy.save_pretrained(folder)
            cfg.save_pretrained(folder)
            self.preprocessor.save_pretrained(folder)
            self.postprocessor.save_pretrained(folder)

        save_checkpoint(
            directory,
            self.step,
            save_pretrained,
            self.optimizer,
            self.scheduler,
            num_processes=self.dist.world_size,
            batch_size=cfg.batch_size,
        )
        update_last_checkpoint(directory)
        return directory

    def run(self) -> TrainResult:
        cfg = self.cfg
        global_batch = cfg.batch_size * self.dist.world_size
        # Every iter() of a DataLoader draws its workers' base seed from torch's global generator, as
        # in LeRobot (so a run's random numbers are LeRobot's). A resumed run opens its first epoch
        # before restoring the generators: that draw was made before the checkpoint in the
        # uninterrupted run, which continues with exactly the saved generator state.
        batches: Iterator = cycle(self.dataloader, iter(self.dataloader))
        if cfg.resume:
            load_rng_state(Path(cfg.checkpoint_path) / TRAINING_STATE_DIR)
        bar = None
        if self.dist.is_main and self.progress and self.step < cfg.steps:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, desc="Training", unit="step", dynamic_ncols=True)
            logger.info(
                "training %s on %s (%d frames, %d episodes) for %d steps, global batch %d = %d x %d process(es)",
                cfg.trainable_config.type,
                cfg.dataset.repo_id,
                self.dataset.num_frames,
                self.dataset.num_episodes,
                cfg.steps,
                global_batch,
                cfg.batch_size,
                self.dist.world_size,
            )
        last_checkpoint: Path | None = None
        final_loss: float | None = None
        total_data_s = total_update_s = 0.0
        steps_run = timed_steps = 0
        window: list[tuple[float, float, float]] = []
        try:
            while self.step < cfg.steps:
                start = time.perf_counter()
                batch = next(batches)
                batch = self.preprocessor(_float_cameras(batch, self.camera_keys))
                dataloading_s = time.perf_counter() - start
                loss, grad_norm, outputs = self._update(batch)
                update_s = time.perf_counter() - start - dataloading_s
                lr = self.optimizer.param_groups[0]["lr"]
                loss_value, (dataloading_s, update_s) = self._reduce(loss, [dataloading_s, update_s])
                self.step += 1
                steps_run += 1
                final_loss = loss_value
                if steps_run > 1 or self.step == cfg.steps:
                    # The first step also starts the loader's workers and warms caches up: the
                    # run's figures leave it out when there are others.
                    total_data_s += dataloading_s
                    total_update_s += update_s
                    timed_steps += 1
                step_s = dataloading_s + update_s
                record = {
                    "step": self.step,
                    "loss": loss_value,
                    "grad_norm": float(grad_norm.item()),
                    "lr": lr,
                    "dataloading_s": dataloading_s,
                    "update_s": update_s,
                    "samples_per_s": global_batch / step_s if step_s > 0 else math.inf,
                    "data_wait_share": dataloading_s / step_s if step_s > 0 else 0.0,
                    **outputs,
                }
                if self.eval_loader is not None and self.step % cfg.eval_steps == 0:
                    record["eval_loss"] = self._eval_loss()
                    if bar is not None:
                        bar.write(f"step:{self.step} eval_loss:{record['eval_loss']:.4f}", file=sys.stderr)
                    elif self.dist.is_main:
                        logger.info("step %d: eval_loss=%.4f", self.step, record["eval_loss"])
                self.metrics.append(record)
                window.append((loss_value, dataloading_s, update_s))
                if bar is not None:
                    data_s, busy_s = sum(w[1] for w in window), sum(w[1] + w[2] for w in window)
                    bar.set_postfix_str(
                        f"loss={loss_value:.4f} lr={lr:.1e} smp/s={global_batch * len(window) / busy_s:.1f} "
                        f"data={100 * data_s / busy_s:.0f}%",
                        refresh=False,
                    )
                    bar.update(1)
                if cfg.log_freq > 0 and self.step % cfg.log_freq == 0:
                    self._log_window(window, lr, global_batch, bar)
                    window = []
                if cfg.save_checkpoint and should_save_checkpoint(self.step, cfg.save_freq, cfg.steps):
                    if self.dist.is_main:
                        last_checkpoint = self._save()
                        self.metrics.flush()
                        # Drawing costs about a second: at most once a minute while training.
                        if self.step < cfg.steps and time.monotonic() - self._plotted_at > 60:
                            self._plot()
                    self.dist.barrier()
        finally:
            if bar is not None:
                bar.close()
            self.metrics.close()
        loss_curve = self._plot()
        busy = total_data_s + total_update_s
        result = TrainResult(
            output_dir=self.output_dir,
            last_checkpoint=last_checkpoint,
            metrics_path=self.metrics.path,
            loss_curve_path=loss_curve,
            step=self.step,
            final_loss=final_loss,
            steps_run=steps_run,
            samples_per_s=global_batch * timed_steps / busy if busy > 0 else 0.0,
            data_wait_share=total_data_s / busy if busy > 0 else 0.0,
        )
        if self.dist.is_main and steps_run:
            logger.info(
                "end of training at step %d: %.1f samples/s, %.1f%% of step time waiting for data",
                result.step,
                result.samples_per_s,
                100 * result.data_wait_share,
            )
        return result

    def _log_window(self, window, lr: float, global_batch: int, bar) -> None:
        if not self.dist.is_main or not window:
            return
        loss = sum(w[0] for w in window) / len(window)
        data_s, busy_s = sum(w[1] for w in window), sum(w[1] + w[2] for w in window)
        line = (
            f"step:{self.step} smpl:{self.step * global_batch} loss:{loss:.4f} lr:{lr:.1e} "
            f"data_s:{data_s / len(window):.4f} updt_s:{(busy_s - data_s) / len(window):.4f} "
            f"smp/s:{global_batch * len(window) / busy_s:.1f} data_wait:{100 * data_s / busy_s:.1f}%"
        )
        if bar is not None:
            bar.write(line, file=sys.stderr)
        else:
            logger.info(line)

    def _plot(self) -> Path | None:
        if not self.dist.is_main:
            return None
        self._plotted_at = time.monotonic()
        return plot_loss_curve(
            self.metrics.path, self.output_dir / LOSS_CURVE_FILE, title=self.cfg.job_name or ""
        )


def train(cfg: TrainPipelineConfig, *, progress: bool = True) -> TrainResult:
    """Trains the policy of a validated `cfg` (``parse_train_config``), writing checkpoints and logs
    under ``cfg.output_dir``. Returns where they are and how fast it went."""
    if cfg.optimizer is None or cfg.policy is None:
        raise TrainingConfigError("the configuration is not validated: build it with parse_train_config(...)")
    dist = Distributed.from_environment(torch.device(cfg.trainable_config.device or "cpu").type)
    try:
        result = _Trainer(cfg, progress, dist).run()
        # Every rank done (the main one draws the loss curve last) before any tears the group down:
        # a gloo group destroyed while a peer still holds its connections can abort the process.
        dist.barrier()
        return result
    finally:
        if dist.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


__all__ = ["LOSS_CURVE_FILE", "METRICS_FILE", "Distributed", "TrainResult", "set_seed", "train"]
