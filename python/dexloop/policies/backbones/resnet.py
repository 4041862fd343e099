"""ResNet backbones with torchvision's module tree and parameter names, without torchvision.

LeRobot builds ACT's and Diffusion Policy's image encoders from ``torchvision.models.resnet18``; their
checkpoints hold its parameters under torchvision's names (``conv1.weight``, ``layer1.0.bn1.running_mean``,
``layer2.0.downsample.0.weight``...). This module builds the same networks, in the same order and with the
same initialisation, so those weights load and give the same features. ``FrozenBatchNorm2d`` and
``IntermediateLayerGetter`` restate torchvision's classes of those names (ACT freezes its batch-norm
statistics and reads the ``layer4`` feature map).

ImageNet weights are never downloaded (and not looked for at all while a policy is built to receive a
checkpoint's weights, see ``backbone_weights_from_checkpoint``): ``weights`` may be a local file (``.pth`` / ``.safetensors`` with
torchvision's state dict), or the torchvision enum name LeRobot's configs carry
(``"ResNet18_Weights.IMAGENET1K_V1"``), which is looked up in torch's hub cache
(``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth``, where torchvision keeps it) or in
``$DEXLOOP_BACKBONE_WEIGHTS_DIR``; when it is in neither, the backbone keeps its random weights and one
warning says so (a checkpoint's weights overwrite them anyway when a policy is loaded).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from dexloop.errors import CheckpointError, PolicyConfigError

logger = logging.getLogger("dexloop.policies")

# torchvision's file names of the ImageNet weights of each architecture (IMAGENET1K_V1).
TORCHVISION_WEIGHT_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "resnet101": "resnet101-63fe2227.pth",
    "resnet152": "resnet152-394f9c45.pth",
}
_warned: set[str] = set()
# Set while a policy is built to receive a checkpoint's weights: backbone weights would be overwritten.
_checkpoint_will_overwrite: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "dexloop_backbone_skip", default=False
)


@contextlib.contextmanager
def backbone_weights_from_checkpoint():
    """Within this block backbones keep their random initialisation without looking for (or warning
    about) pretrained weights: a checkpoint's weights are about to replace them."""
    token = _checkpoint_will_overwrite.set(True)
    try:
        yield
    finally:
        _checkpoint_will_overwrite.reset(token)


class FrozenBatchNorm2d(nn.Module):
    """Batch normalisation with fixed statistics and affine parameters, all buffers (torchvision's
    ``FrozenBatchNorm2d``): it never learns and behaves the same in train and eval mode."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # Weights saved from a trainable BatchNorm2d carry a step counter the frozen layer has no use for.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, x: Tensor) -> Tensor:
        # Reshaped up front so the arithmetic is the same as torchvision's (and fuses on export).
        w = self.weight.reshape(1, -1, 1, 1)
        b = self.bias.reshape(1, -1, 1, 1)
        rv = self.running_var.reshape(1, -1, 1, 1)
        rm = self.running_mean.reshape(1, -1, 1, 1)
        scale = w * (rv + self.eps).rsqrt()
        bias = b - rm * scale
        return x * scale + bias

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def conv3x3(
    in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1
) -> nn.Conv2d:
    return nn.Conv2d(
        in_planes,
        out_planes,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self,
        inplanes,
        planes,
        stride=1,
        downsample=None,
        groups=1,
        base_width=64,
        dilation=1,
        norm_layer=None,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise PolicyConfigError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            # torchvision refuses it too: ResNet-18/34 cannot replace a stride with dilation.
            raise PolicyConfigError(
                "replace_final_stride_with_dilation is not supported by ResNet-18/34 (BasicBlock), as in torchvision"
            )
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 convolutions with a residual connection (ResNet-50 and deeper), stride on the 3×3."""

    expansion = 4

    def __init__(
        self,
        inplanes,
        planes,
        stride=1,
        downsample=None,
        groups=1,
        base_width=64,
        dilation=1,
        norm_layer=None,
    ):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet: stem (conv1, bn1, relu, maxpool), four stages layer1..layer4, avgpool, fc.
    Children and parameters are named and ordered as torchvision's, so ``list(children())[:-2]`` is the
    convolutional trunk and state dicts are interchangeable."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: list[bool] | None = None,
        norm_layer: Callable[..., nn.Module] | None = None,
    ):
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes = 64
        self.dilation = 1
        replace_stride_with_dilation = replace_stride_with_dilation or [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise PolicyConfigError(
                f"replace_stride_with_dilation should be None or a 3-element tuple, got {replace_stride_with_dilation}"
            )
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(
            block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0]
        )
        self.layer3 = self._make_layer(
            block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1]
        )
        self.layer4 = self._make_layer(
            block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2]
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        # torchvision's initialisation, in the same module order (so the same seed gives the same weights).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(
        self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride), norm_layer(planes * block.expansion)
            )
        layers = [
            block(
                self.inplanes,
                planes,
                stride,
                downsample,
                self.groups,
                self.base_width,
                previous_dilation,
                norm_layer,
            )
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(
                    self.inplanes,
                    planes,
                    groups=self.groups,
                    base_width=self.base_width,
                    dilation=self.dilation,
                    norm_layer=norm_layer,
                )
            )
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class IntermediateLayerGetter(nn.ModuleDict):
    """torchvision's ``IntermediateLayerGetter``: keeps a model's children up to the last one named in
    ``return_layers`` (under their own names, so the parameter names do not change) and returns
    ``{new_name: output}`` for each of them."""

    def __init__(self, model: nn.Module, return_layers: dict[str, str]):
        if not set(return_layers).issubset(name for name, _ in model.named_children()):
            raise ValueError("return_layers are not present in model")
        orig_return_layers = dict(return_layers)
        remaining = dict(return_layers)
        layers = OrderedDict()
        for name, module in model.named_children():
            layers[name] = module
            remaining.pop(name, None)
            if not remaining:
                break
        super().__init__(layers)
        self.return_layers = orig_return_layers

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out


_ARCHITECTURES: dict[str, tuple[type, list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


def _find_local_weights(name: str, weights: str) -> Path | None:
    """A local file for ``weights``: the path itself, or torchvision's file of the named enum in
    ``$DEXLOOP_BACKBONE_WEIGHTS_DIR`` or torch's hub cache."""
    candidate = Path(weights).expanduser()
    if candidate.is_file():
        return candidate
    if not weights.startswith(("ResNet", "IMAGENET")):
        raise PolicyConfigError(
            f"pretrained_backbone_weights={weights!r}: neither a file nor a torchvision weights name "
            "(e.g. 'ResNet18_Weights.IMAGENET1K_V1')"
        )
    filename = TORCHVISION_WEIGHT_FILES.get(name)
    if filename is None or "IMAGENET1K_V1" not in weights:
        return None
    directories = []
    if os.environ.get("DEXLOOP_BACKBONE_WEIGHTS_DIR"):
        directories.append(Path(os.environ["DEXLOOP_BACKBONE_WEIGHTS_DIR"]))
    torch_home = Path(
        os.environ.get("TORCH_HOME", Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch")
    )
    directories.append(torch_home.expanduser() / "hub" / "checkpoints")
    for directory in directories:
        if (directory / filename).is_file():
            return directory / filename
    return None


def load_backbone_weights(model: nn.Module, path: Path) -> None:
    """Loads a torchvision state dict (``.pth`` or ``.safetensors``) into ``model``; every parameter
    and buffer must be there with its shape (CheckpointError naming the file and key otherwise)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    own = model.state_dict()
    for key, tensor in own.items():
        if key not in state:
            raise CheckpointError(f"{path}: backbone weight {key!r} is missing")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{path}: backbone weight {key!r} has shape {tuple(state[key].shape)}, the model {tuple(tensor.shape)}"
            )
    model.load_state_dict({k: state[k] for k in own}, strict=True)


def make_resnet(
    name: str = "resnet18",
    weights: str | os.PathLike | None = None,
    *,
    replace_stride_with_dilation: list[bool] | None = None,
    norm_layer: Callable[..., nn.Module] | None = None,
) -> ResNet:
    """The torchvision ResNet called ``name`` ("resnet18", ..., "resnet152"), with ``weights`` from a
    local file when there is one (see the module docstring); never downloads."""
    if name not in _ARCHITECTURES:
        raise PolicyConfigError(f"vision_backbone={name!r} is not one of {sorted(_ARCHITECTURES)}")
    block, layers = _ARCHITECTURES[name]
    model = ResNet(
        block, layers, replace_stride_with_dilation=replace_stride_with_dilation, norm_layer=norm_layer
    )
    if weights is not None and not _checkpoint_will_overwrite.get():
        path = _find_local_weights(name, str(weights))
        if path is None:
            if str(weights) not in _warned:
                _warned.add(str(weights))
                logger.warning(
                    "Backbone weights %s are not on this machine (dexloop never downloads them; put torchvision's "
                    "%s in $DEXLOOP_BACKBONE_WEIGHTS_DIR or torch's hub cache); using random weights. A "
                    "checkpoint's weights replace them when a trained policy is loaded.",
                    weights,
                    TORCHVISION_WEIGHT_FILES.get(name, "weights file"),
                )
        else:
            load_backbone_weights(model, path)
    return model


def resnet18(weights: str | os.PathLike | None = None, **kwargs) -> ResNet:
    return make_resnet("resnet18", weights, **kwargs)
