"""Vision backbones of dexloop's policies, written with torchvision's parameter names so LeRobot's
weights load unchanged (dexloop does not depend on torchvision)."""

from dexloop.policies.backbones.resnet import (
    FrozenBatchNorm2d,
    IntermediateLayerGetter,
    ResNet,
    load_backbone_weights,
    make_resnet,
    resnet18,
)

__all__ = [
    "FrozenBatchNorm2d",
    "IntermediateLayerGetter",
    "ResNet",
    "load_backbone_weights",
    "make_resnet",
    "resnet18",
]
