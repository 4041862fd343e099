"""``dexloop deploy``: an exported policy drives an arm through the C++ control loop, asynchronously.

    dexloop deploy --policy.path=outputs/export/act                       # the simulated SO-101 twin
    dexloop deploy --policy.path=EXPORT --server=127.0.0.1:8080           # through `dexloop policy-server`
    dexloop deploy --policy.path=EXPORT --robot.type=so101_follower --robot.port=/dev/ttyACM0 \\
        --robot.id=my_arm --episode_time_s=30

Flags are draccus's (``--a.b=c``); ``--help`` lists them with their defaults. The work is done by
dexloop.deploy; this module parses the command line and prints the summary. Unusable options are
answered with one line on stderr (exit code 2), failures of the run with exit code 1.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

PROG = "dexloop deploy"


def format_help() -> str:
    from dexloop.deploy.deploy import DeployConfig
    from dexloop.training.config import describe_fields

    lines = [
        f"usage: {PROG} --policy.path=EXPORT [--robot.port=PORT] [--server=HOST:PORT] [--n_episodes=10]",
        "",
        "Runs an exported policy on a robot: observations to the policy (in this process or on a policy",
        "server over gRPC), chunks into the C++ control loop's action queue, goals onto the servo bus. Without",
        "--robot.port, the simulated SO-101 twin (servo simulator on a pty + MuJoCo) with its success rate.",
        "",
        "options (default in brackets):",
    ]
    describe_fields(DeployConfig, "", [], lines)
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(format_help(), end="")
        return 0
    import draccus

    from dexloop.async_inference.server import TOKEN_ENV
    from dexloop.deploy.deploy import DEPLOY_INFO_NAME, DeployConfig, deploy_main
    from dexloop.errors import DexloopError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    try:
        cfg = draccus.parse(config_class=DeployConfig, args=args)
        cfg.validate()
    except SystemExit:
        print(f"{PROG}: invalid options {args} (see {PROG} --help)", file=sys.stderr)
        return 2
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    if cfg.token is None:
        cfg.token = os.environ.get(TOKEN_ENV) or None
    try:
        report = deploy_main(cfg)
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    if report["pc_success"] is not None:
        print(f"success: {report['pc_success']:.1f}% over {report['n_episodes']} episodes")
    lateness = report["lateness_us"]
    print(
        f"control loop: lateness p99 {lateness['p99_us']:.0f} us, max {lateness['max_us']:.0f} us; "
        f"starved ticks {report['starved_ticks']}; overruns {report['overruns']}"
    )
    print(f"report: {os.path.join(cfg.output_dir, DEPLOY_INFO_NAME)}")
    return 0
