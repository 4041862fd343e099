"""``dexloop bench``: measure what a deployment cares about.

    dexloop bench latency --policy.path=outputs/train/act/checkpoints/last/pretrained_model
    dexloop bench latency --policy.path=CKPT --variants=torch,ort-fp32,ort-int8 --batch_sizes=1,8 --calls=1000

``latency`` times the action-chunk call of a checkpoint per stage (preprocess, inference,
postprocess, whole call; p50 / p90 / p99 / max over ``--calls`` calls after ``--warmup``) for each
variant (torch eager, torch.compile, ONNX Runtime fp32 / fp16 / int8, CUDA / TensorRT on a GPU;
``lerobot`` where LeRobot is installed), with peak memory and model size, and writes a table,
latency.json and latency.png to ``--output_dir``. Each variant runs in its own process.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

PROG = "dexloop bench"
DEFAULT_VARIANTS = "torch,ort-fp32,ort-int8"
USAGE = f"""usage: dexloop bench latency --policy.path=CHECKPOINT [options]

options (default in brackets):
  --policy.path=PATH        the checkpoint (a pretrained_model folder)  [required]
  --variants=LIST           comma-separated, from: {{variants}}  [{DEFAULT_VARIANTS}]
  --batch_sizes=LIST        comma-separated batch sizes  [1]
  --calls=N                 timed calls per variant and batch size  [1000]
  --warmup=N                untimed calls first  [20]
  --threads=N               intra-op threads (torch and ONNX Runtime)  [all cores]
  --dataset.root=PATH       the training dataset, for int8 calibration  [from train_config.json]
  --output_dir=DIR          where latency.json, latency.png and the exports go  [outputs/bench/latency/<time>]
"""


def _options(args: Sequence[str]) -> dict[str, str]:
    options = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ValueError(f"expected --name=value, got {arg!r}")
        name, value = arg[2:].split("=", 1)
        options[name] = value
    return options


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from dexloop.errors import DexloopError
    from dexloop.inference import latency

    usage = USAGE.replace("{variants}", ",".join(latency.VARIANTS))
    if not args or args[0] in ("-h", "--help") or "--help" in args or "-h" in args:
        print(usage, end="")
        return 0 if args else 2
    if args[0] != "latency":
        print(f"{PROG}: unknown benchmark {args[0]!r}; benchmarks: latency", file=sys.stderr)
        return 2
    known = {
        "policy.path",
        "variants",
        "batch_sizes",
        "calls",
        "warmup",
        "threads",
        "dataset.root",
        "output_dir",
    }
    try:
        options = _options(args[1:])
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join('--' + u for u in unknown)}")
        if "policy.path" not in options:
            raise ValueError("no checkpoint: pass --policy.path=<pretrained_model folder>")
        variants = options.get("variants", DEFAULT_VARIANTS).split(",")
        bad = [v for v in variants if v not in latency.VARIANTS]
        if bad:
            raise ValueError(f"unknown variant(s) {bad}; variants: {', '.join(latency.VARIANTS)}")
        batch_sizes = [int(b) for b in options.get("batch_sizes", "1").split(",")]
        calls, warmup = int(options.get("calls", "1000")), int(options.get("warmup", "20"))
        threads = int(options["threads"]) if "threads" in options else None
        if calls < 1 or warmup < 0 or min(batch_sizes) < 1:
            raise ValueError("--calls and --batch_sizes must be positive, --warmup not negative")
    except ValueError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    policy_path = Path(options["policy.path"])
    output_dir = Path(
        options.get("output_dir") or f"outputs/bench/latency/{dt.datetime.now():%Y-%m-%d_%H-%M-%S}"
    )
    dataset_root = Path(options["dataset.root"]) if "dataset.root" in options else None
    try:
        report = latency.run(
            policy_path,
            variants,
            batch_sizes,
            output_dir,
            calls=calls,
            warmup=warmup,
            threads=threads,
            dataset_root=dataset_root,
        )
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    print(latency.format_table(report))
    print(f"results: {output_dir / 'latency.json'}")
    if report.get("plot"):
        print(f"plot:    {report['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
