"""The per-step training log (``metrics.jsonl``) and the loss curve drawn from it.

One JSON object per line and step, appended as training goes and flushed at every checkpoint, so
the file is readable while a run is going and survives it being killed. A resumed run first drops
the lines after its checkpoint's step (the steps the interrupted run made past its last checkpoint,
which the resumed run makes again), so the file always holds one line per step of one curve.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from dexloop.training._files import write_with

logger = logging.getLogger(__name__)


class MetricsLog:
    """Appends one record per step to `path` (only where `enabled`: the main process)."""

    def __init__(self, path: Path, enabled: bool = True, flush_every: int = 50):
        self.path = Path(path)
        self.enabled = enabled
        self.flush_every = flush_every
        self._handle = None
        self._pending = 0

    def start(self, resume_step: int | None = None) -> None:
        if not self.enabled:
            return
        if resume_step is not None and self.path.exists():
            kept = [record for record in read_metrics(self.path) if record.get("step", 0) <= resume_step]
            text = "".join(json.dumps(record) + "\n" for record in kept)
            write_with(self.path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)

    def append(self, record: dict[str, Any]) -> None:
        if self._handle is None:
            return
        self._handle.write(json.dumps({k: _finite(v) for k, v in record.items()}) + "\n")
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            self._pending = 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _finite(value: Any) -> Any:
    # JSON has no inf/nan; a diverged loss is logged as null rather than breaking the file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a last line cut short by a kill is skipped."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def plot_loss_curve(metrics_path: Path, png_path: Path, title: str = "") -> Path | None:
    """Draws loss (and its running mean, and the held-out loss where measured) against step, with
    the learning rate on a second axis, into `png_path`. Returns None, with a warning, when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no loss curve (pip install matplotlib)")
        return None
    metrics_path = Path(metrics_path)
    records = (
        [r for r in read_metrics(metrics_path) if r.get("loss") is not None] if metrics_path.exists() else []
    )
    if not records:
        return None
    steps = [r["step"] for r in records]
    losses = [r["loss"] for r in records]
    window = max(1, len(losses) // 50)
    running, total = [], 0.0
    for index, value in enumerate(losses):
        total += value
        if index >= window:
            total -= losses[index - window]
        running.append(total / min(index + 1, window))
    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    axis.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss")
    axis.plot(steps, running, color="tab:blue", linewidth=1.6, label=f"loss, mean of {window} steps")
    held_out = [(r["step"], r["eval_loss"]) for r in records if r.get("eval_loss") is not None]
    if held_out:
        axis.plot(*zip(*held_out, strict=True), "o-", color="tab:green", markersize=3, label="held-out loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    if min(losses) > 0 and max(losses) / min(losses) > 20:
        axis.set_yscale("log")
    axis.grid(alpha=0.3)
    lr_axis = axis.twinx()
    lr_axis.plot(
        steps, [r.get("lr", float("nan")) for r in records], color="tab:orange", linewidth=1.0, label="lr"
    )
    lr_axis.set_ylabel("learning rate", color="tab:orange")
    lines = axis.get_legend_handles_labels()
    lr_lines = lr_axis.get_legend_handles_labels()
    axis.legend(lines[0] + lr_lines[0], lines[1] + lr_lines[1], loc="upper right")
    axis.set_title(title or "training loss")
    figure.tight_layout()
    png_path = Path(png_path)
    write_with(png_path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)
    return png_path
