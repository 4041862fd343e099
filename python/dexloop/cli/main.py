"""``dexloop``: one entry point, one subcommand per job (``dexloop <command> --help`` for each).

Commands live in their own modules, imported only when run, so ``dexloop --help`` stays fast and one
command's dependencies never burden another. Each module has ``main(argv) -> int``; flags are parsed
LeRobot-style with draccus (``--robot.type=so101_follower``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from dexloop import __version__

# name -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "dataset": (
        "dexloop.cli.dataset",
        "Tools on LeRobot datasets: info, merge, split, delete-episodes, convert, repair, visualize, ...",
    ),
    "sim-bus": (
        "dexloop.cli.sim_bus",
        "Run a simulated servo bus (an SO-100/SO-101, Koch or ALOHA arm) on a pty and print its port",
    ),
    "train": (
        "dexloop.cli.train",
        "Train ACT or Diffusion Policy on a LeRobot dataset, as lerobot-train does",
    ),
    "export": (
        "dexloop.cli.export",
        "Export a trained ACT policy to ONNX (raw images and state in, actions out) with its manifest",
    ),
    "bench": (
        "dexloop.cli.bench",
        "Benchmark a policy's action latency per stage: torch eager, torch.compile, ONNX Runtime fp32/int8",
    ),
    "eval": (
        "dexloop.cli.eval",
        "Roll a policy out in a simulated environment and report its success, as lerobot-eval does",
    ),
    "deploy": (
        "dexloop.cli.deploy",
        "Drive an arm (the simulated SO-101 by default) with an exported policy through the C++ control loop",
    ),
    "policy-server": (
        "dexloop.cli.policy_server",
        "Serve an exported policy to robot clients over gRPC (typed messages, token off loopback)",
    ),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: dexloop <command> [options]",
        "",
        "LeRobot-compatible robot learning with a native C++ core.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()),
        "",
        "options:",
        "  -h, --help     show this message and exit",
        "  --version      show dexloop's version and exit",
        "",
        "Run `dexloop <command> --help` for a command's options and their defaults.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(usage(), file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] == "--version":
        print(f"dexloop {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"dexloop: unknown command {name!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
