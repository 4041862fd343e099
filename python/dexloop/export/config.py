"""The options of ``dexloop export`` (draccus, LeRobot-style dotted flags)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import draccus

from dexloop.errors import ExportError
from dexloop.export.graphs import IMAGE_LAYOUTS
from dexloop.export.onnx_export import DEFAULT_OPSET, PRECISIONS

USAGE = "usage: dexloop export --policy.path=CHECKPOINT --onnx [--output=DIR] [--precision=fp32|fp16|int8] [--opset=N]"


@dataclass
class ExportPolicyConfig:
    # The checkpoint to export: a pretrained_model folder (config.json, model.safetensors, processors).
    path: Path | None = None


@dataclass
class ExportDatasetConfig:
    # The training dataset (a LeRobot dataset folder): int8 calibration frames, action names and fps.
    # Default: the dataset root recorded in the checkpoint's train_config.json, when it is here.
    root: Path | None = None


@dataclass
class ExportConfig:
    policy: ExportPolicyConfig = field(default_factory=ExportPolicyConfig)
    dataset: ExportDatasetConfig = field(default_factory=ExportDatasetConfig)
    # Export to ONNX (the one format dexloop writes; TensorRT engines are built from it at run time).
    onnx: bool = False
    # The export folder. Default: onnx_<precision> beside the checkpoint folder.
    output: Path | None = None
    # fp32, fp16 (GPUs), int8 (static, calibrated on dataset frames) or int8-dynamic.
    precision: str = "fp32"
    # The ONNX opset of the graphs.
    opset: int = DEFAULT_OPSET
    # The camera images' layout as the robot gives them: HWC or CHW (uint8 either way).
    image_layout: str = "HWC"
    # Frames drawn from the dataset to calibrate int8 activation ranges.
    calibration_samples: int = 64
    # Replace the output folder when it exists.
    overwrite: bool = False

    def validate(self) -> None:
        if self.policy.path is None:
            raise ExportError("no checkpoint: pass --policy.path=<pretrained_model folder>")
        if not self.onnx:
            raise ExportError("no format: pass --onnx (dexloop exports ONNX graphs)")
        if self.precision not in PRECISIONS:
            raise ExportError(f"--precision={self.precision}: expected one of {', '.join(PRECISIONS)}")
        if self.image_layout not in IMAGE_LAYOUTS:
            raise ExportError(
                f"--image_layout={self.image_layout}: expected one of {', '.join(IMAGE_LAYOUTS)}"
            )
        if self.calibration_samples < 1:
            raise ExportError(f"--calibration_samples must be at least 1, got {self.calibration_samples}")
        if self.output is None:
            self.output = Path(self.policy.path).parent / f"onnx_{self.precision}"


def parse_export_config(args: Sequence[str]) -> ExportConfig:
    # `--onnx` alone is a switch, as in the documented command.
    args = ["--onnx=true" if arg == "--onnx" else arg for arg in args]
    try:
        cfg = draccus.parse(config_class=ExportConfig, args=args)
    except SystemExit as error:
        raise ExportError(f"invalid export options {args} (see dexloop export --help)") from error
    except Exception as error:
        raise ExportError(f"invalid export options {args}: {error}") from error
    cfg.validate()
    return cfg


def format_help() -> str:
    from dexloop.training.config import describe_fields

    lines = [
        USAGE,
        "",
        "Exports an ACT checkpoint (dexloop's or LeRobot's) to ONNX: the graph takes uint8 camera images and",
        "the state vector and returns the unnormalised action chunk; OUTPUT/dexloop_export.json describes it",
        "for dexloop.inference.Runtime. The export is checked against the torch policy before it is kept.",
        "",
        "options (default in brackets):",
    ]
    describe_fields(ExportConfig, "", [], lines)
    return "\n".join(lines) + "\n"


__all__ = ["ExportConfig", "format_help", "parse_export_config"]
