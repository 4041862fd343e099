"""``dexloop export``: a trained policy as ONNX graphs that take raw observations and return actions.

    dexloop export --policy.path=outputs/train/act/checkpoints/last/pretrained_model --onnx
    dexloop export --policy.path=CHECKPOINT --onnx --precision=int8 --dataset.root=data/pick_cube --output=outputs/act_int8

``--help`` lists the flags with their defaults. The work is done by dexloop.export; this module only
parses the command line and reports. Unusable options or checkpoints are answered with one line on
stderr naming them (exit code 2 for bad options, 1 for the rest).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

PROG = "dexloop export"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from dexloop.errors import DexloopError
    from dexloop.export.config import format_help, parse_export_config
    from dexloop.export.onnx_export import export_policy

    if "-h" in args or "--help" in args:
        print(format_help(), end="")
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    try:
        cfg = parse_export_config(args)
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    try:
        result = export_policy(
            cfg.policy.path,
            cfg.output,
            precision=cfg.precision,
            opset=cfg.opset,
            image_layout=cfg.image_layout,
            dataset_root=cfg.dataset.root,
            calibration_samples=cfg.calibration_samples,
            overwrite=cfg.overwrite,
        )
    except DexloopError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    manifest = result.manifest
    print(
        f"exported {manifest.policy_type} ({manifest.precision}, opset {manifest.opset}) to {result.folder}"
    )
    for role, graph in manifest.graphs.items():
        size_mb = (result.folder / graph.file).stat().st_size / 1e6
        print(
            f"  {graph.file} ({role}): {size_mb:.1f} MB; max |onnx - torch| on the check inputs "
            f"{manifest.check[role]['max_abs_error']:.3g}"
        )
        for spec in graph.inputs:
            layout = f" {spec.layout}" if spec.layout else ""
            print(f"    input  {spec.name}: {spec.dtype} {spec.shape}{layout}")
        for spec in graph.outputs:
            print(f"    output {spec.name}: {spec.dtype} {spec.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
