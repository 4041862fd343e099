"""``dexloop train``: train ACT or Diffusion Policy on a LeRobot dataset, as ``lerobot-train`` does.

    dexloop train --dataset.repo_id=user/pick_cube --dataset.root=data/pick_cube --policy.type=act \\
        --batch_size=8 --steps=20000 --output_dir=outputs/train/act_pick_cube
    dexloop train --resume=true --config_path=outputs/train/act_pick_cube/checkpoints/last/pretrained_model/train_config.json
    torchrun --nproc_per_node=2 -m dexloop.cli.train --dataset.repo_id=... --policy.type=act ...

Flags are LeRobot 0.6.1's (draccus, ``--a.b=c``); ``--help`` lists them with their defaults
(``--help --policy.type=act`` adds ACT's). The work is done by dexloop.training; this module only
parses the command line and reports. A configuration, dataset or checkpoint that cannot be used is
answered with one line on stderr naming it (exit code 2 for bad flags, 1 for the rest).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

PROG = "dexloop train"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from dexloop.errors import DexloopError, TrainingConfigError
    from dexloop.training.config import parse_train_config, print_help

    if "-h" in args or "--help" in args:
        print_help([arg for arg in args if arg not in ("-h", "--help")])
        return 0
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        cfg = parse_train_config(args)
    except TrainingConfigError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    from dexloop.training.train import train

    try:
        result = train(cfg)
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    if rank == 0:
        print(f"output:          {result.output_dir}")
        if result.last_checkpoint is not None:
            print(f"last checkpoint: {result.last_checkpoint}")
        print(f"metrics:         {result.metrics_path}")
        if result.loss_curve_path is not None:
            print(f"loss curve:      {result.loss_curve_path}")
        if result.steps_run:
            print(
                f"steps {result.step}/{cfg.steps}, final loss {result.final_loss:.5g}, "
                f"{result.samples_per_s:.1f} samples/s, {100 * result.data_wait_share:.1f}% of step time waiting for data"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
