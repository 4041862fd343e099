"""``dexloop eval``: roll a policy out in a simulated environment and report its success, as ``lerobot-eval``.

    dexloop eval --policy.path=outputs/train/act/checkpoints/last/pretrained_model --env.type=so101_push \\
        --eval.n_episodes=50 --eval.batch_size=4
    dexloop eval --policy.path=CHECKPOINT --env.type=pusht --eval.n_episodes=10 --output_dir=outputs/eval/pusht

Flags are LeRobot 0.6.1's (draccus, ``--a.b=c``); ``--help`` lists them with their defaults
(``--help --env.type=pusht`` adds the env's). The work is done by dexloop.eval; this module only
parses the command line and reports. Options, a checkpoint or an environment that cannot be used are
answered with one line on stderr naming it (exit code 2 for bad options, 1 for the rest).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

PROG = "dexloop eval"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from dexloop.errors import DexloopError, EnvError, PolicyConfigError, TrainingConfigError
    from dexloop.eval.pipeline import EVAL_INFO_NAME, eval_main, parse_eval_config, print_help

    if "-h" in args or "--help" in args:
        print_help([arg for arg in args if arg not in ("-h", "--help")])
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    try:
        cfg = parse_eval_config(args)
    except (EnvError, PolicyConfigError, TrainingConfigError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    try:
        info = eval_main(cfg)
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    overall = info["overall"]
    print(
        f"{overall['n_episodes']} episodes: pc_success {overall['pc_success']:.1f}%, "
        f"avg_sum_reward {overall['avg_sum_reward']:.4f}, avg_max_reward {overall['avg_max_reward']:.4f} "
        f"({overall['eval_s']:.1f} s, {overall['eval_ep_s']:.2f} s per episode)"
    )
    print(f"eval info: {cfg.output_dir / EVAL_INFO_NAME}")
    for path in overall["video_paths"]:
        print(f"video:     {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
