"""Diffusion Policy ("Diffusion Policy: Visuomotor Policy Learning via Action Diffusion", Chi et al. 2023),
module for module as LeRobot 0.6.1 builds it, so LeRobot's checkpoints load and act the same here.

The policy encodes the last ``n_obs_steps`` observations (robot state, one ResNet + spatial
soft-argmax feature per camera, environment state) into a global condition, and denoises a
``horizon``-long action sequence with a conditional 1-D U-Net (FiLM-modulated residual blocks)
driven by a DDPM or DDIM scheduler (dexloop.policies.diffusion.schedulers). The module tree and
parameter names are LeRobot's (``diffusion.rgb_encoder...``, ``diffusion.unet.down_modules.0.0
.conv1.block.0.weight``...), and the random draws are LeRobot's too, in the same order and shapes:
the initial noise, one draw per DDPM step, the training noise and timesteps, the random crop's two
``torch.randint`` calls per encoder - so the same ``torch.manual_seed`` gives the same actions and
the same training loss.

Image preprocessing restates torchvision's tensor ``Resize`` (bilinear, antialiased),
``RandomCrop`` and ``CenterCrop`` in plain torch: dexloop does not depend on torchvision.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from dexloop.errors import PolicyFeatureError
from dexloop.policies.backbones.resnet import make_resnet
from dexloop.policies.diffusion.configuration_diffusion import DiffusionConfig
from dexloop.policies.diffusion.schedulers import make_noise_scheduler
from dexloop.policies.pretrained import PreTrainedPolicy
from dexloop.policies.utils import (
    ACTION,
    OBS_ENV_STATE,
    OBS_IMAGES,
    OBS_STATE,
    get_device_from_parameters,
    get_dtype_from_parameters,
    populate_queues,
)

ACTION_IS_PAD = "action_is_pad"


class DiffusionPolicy(PreTrainedPolicy):
    """Diffusion Policy with LeRobot's interface: ``select_action`` (observation and action queues),
    ``predict_action_chunk``, ``reset`` and ``forward`` (the training loss)."""

    config_class = DiffusionConfig
    name = "diffusion"

    def __init__(self, config: DiffusionConfig, **kwargs):
        super().__init__(config)
        config.validate_features()
        self.config = config
        # The n latest observations and the actions still to execute, filled during a rollout.
        self._queues: dict[str, deque] = {}
        self.diffusion = DiffusionModel(config)
        self.reset()

    def get_optim_params(self):
        return self.diffusion.parameters()

    def reset(self) -> None:
        """Clears the observation and action queues; call it at every environment reset."""
        self._queues = {
            OBS_STATE: deque(maxlen=self.config.n_obs_steps),
            ACTION: deque(maxlen=self.config.n_action_steps),
        }
        if self.config.image_features:
            self._queues[OBS_IMAGES] = deque(maxlen=self.config.n_obs_steps)
        if self.config.env_state_feature:
            self._queues[OBS_ENV_STATE] = deque(maxlen=self.config.n_obs_steps)

    # ----- input checks (LeRobot would fail deep inside torch with an unhelpful message) -----

    def _input_keys(self) -> list[str]:
        keys = [OBS_STATE, *self.config.image_features]
        if self.config.env_state_feature:
            keys.append(OBS_ENV_STATE)
        return keys

    def _check_inputs(self, batch: dict[str, Tensor], image_ndim: tuple[int, ...]) -> None:
        for key in self._input_keys():
            if key not in batch:
                raise PolicyFeatureError(
                    f"diffusion: the batch has no {key!r}, which the policy's config declares as an input "
                    f"(batch keys: {sorted(k for k in batch if isinstance(k, str))})"
                )
            if not isinstance(batch[key], Tensor):
                raise PolicyFeatureError(
                    f"diffusion: {key!r} must be a torch.Tensor, got {type(batch[key]).__name__}"
                )
        vectors = [(OBS_STATE, self.config.robot_state_feature)]
        if self.config.env_state_feature:
            vectors.append((OBS_ENV_STATE, self.config.env_state_feature))
        for key, ft in vectors:
            value = batch[key]
            if value.ndim < 2 or tuple(value.shape[-1:]) != tuple(ft.shape):
                raise PolicyFeatureError(
                    f"diffusion: {key!r} has shape {tuple(value.shape)}; its last dimension must be {ft.shape[0]}"
                )
        first_key, first_shape = None, None
        for key, ft in self.config.image_features.items():
            image = batch[key]
            if image.ndim not in image_ndim:
                raise PolicyFeatureError(
                    f"diffusion: {key!r} has shape {tuple(image.shape)}; expected {' or '.join(map(str, image_ndim))} "
                    "dimensions (batch[, time], C, H, W)"
                )
            if first_shape is None:
                first_key, first_shape = key, tuple(image.shape)
            elif tuple(image.shape) != first_shape:
                raise PolicyFeatureError(
                    f"diffusion: {key!r} has shape {tuple(image.shape)} but {first_key!r} has {first_shape}; "
                    "all cameras must have the same shape"
                )
            c, h, w = image.shape[-3:]
            if c != ft.shape[0]:
                raise PolicyFeatureError(
                    f"diffusion: {key!r} has {c} channels, the config declares {tuple(ft.shape)}"
                )
            if self.config.resize_shape is None:
                if self.config.crop_shape is not None:
                    if h < self.config.crop_shape[0] or w < self.config.crop_shape[1]:
                        raise PolicyFeatureError(
                            f"diffusion: {key!r} is {h}x{w}, smaller than crop_shape {tuple(self.config.crop_shape)}"
                        )
                elif (h, w) != tuple(ft.shape[1:]):
                    raise PolicyFeatureError(
                        f"diffusion: {key!r} is {h}x{w}, the config declares {tuple(ft.shape)} (no resize or crop "
                        "is configured to adapt it)"
                    )

    # ----- inference -----

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], noise: Tensor | None = None) -> Tensor:
        """(B, n_action_steps, action_dim) normalised actions from the model. Uses the observation
        queues when ``select_action`` has filled them; otherwise ``batch`` must hold ``n_obs_steps``
        frames per key, (B, n_obs_steps, ...) (images may be (B, C, H, W) when n_obs_steps is 1)."""
        queues_populated = any(len(q) > 0 for q in self._queues.values())
        if queues_populated:
            batch = {k: torch.stack(list(self._queues[k]), dim=1) for k in batch if k in self._queues}
        else:
            self._check_inputs(batch, (4, 5))
            batch = dict(batch)
            if self.config.image_features:
                for key in self.config.image_features:
                    if batch[key].ndim == 4:
                        batch[key] = batch[key].unsqueeze(1)
                batch[OBS_IMAGES] = torch.stack([batch[key] for key in self.config.image_features], dim=-4)
        return self.diffusion.generate_actions(batch, noise=noise)

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor], noise: Tensor | None = None) -> Tensor:
        """One action per batch item (B, action_dim), normalised.

        The last ``n_obs_steps`` observations are kept (the first one repeated until there are
        enough); when no action is queued the model denoises a ``horizon``-long sequence from them
        and the ``n_action_steps`` actions starting at the current step are queued:

            |timestep            | n-o+1 | ... | n   | ... | n+a-1 | n+a | ... | n-o+h |
            |observation is used | yes   | yes | yes | no  | no    | no  | no  | no    |
            |action is generated | yes   | yes | yes | yes | yes   | yes | yes | yes   |
            |action is used      | no    | no  | yes | yes | yes   | no  | no  | no    |

        (o = n_obs_steps, h = horizon, a = n_action_steps), hence n_action_steps <= horizon - n_obs_steps + 1.
        """
        # An offline evaluation batch may carry the ground-truth action.
        if ACTION in batch:
            batch = dict(batch)
            batch.pop(ACTION)
        self._check_inputs(batch, (4,))
        if self.config.image_features:
            batch = dict(batch)
            batch[OBS_IMAGES] = torch.stack([batch[key] for key in self.config.image_features], dim=-4)
        # After the cameras are stacked into one key: the queues hold that key.
        self._queues = populate_queues(self._queues, batch)

        if len(self._queues[ACTION]) == 0:
            actions = self.predict_action_chunk(batch, noise=noise)
            self._queues[ACTION].extend(actions.transpose(0, 1))
        return self._queues[ACTION].popleft()

    # ----- training -----

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, None]:
        """The training loss on a batch of (B, n_obs_steps, ...) observations and (B, horizon, action_dim)
        actions with ``action_is_pad``; no output dict (as LeRobot)."""
        self._check_inputs(batch, (4, 5) if self.config.n_obs_steps == 1 else (5,))
        if self.config.image_features:
            batch = dict(batch)
            for key in self.config.image_features:
                if self.config.n_obs_steps == 1 and batch[key].ndim == 4:
                    batch[key] = batch[key].unsqueeze(1)
            batch[OBS_IMAGES] = torch.stack([batch[key] for key in self.config.image_features], dim=-4)
        loss = self.diffusion.compute_loss(batch)
        return loss, None


def noise_scheduler_for(config: DiffusionConfig):
    """The DDPM or DDIM scheduler a Diffusion config describes."""
    return make_noise_scheduler(
        config.noise_scheduler_type,
        num_train_timesteps=config.num_train_timesteps,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        beta_schedule=config.beta_schedule,
        clip_sample=config.clip_sample,
        clip_sample_range=config.clip_sample_range,
        prediction_type=config.prediction_type,
    )


class DiffusionModel(nn.Module):
    """Observation encoders, the U-Net and the noise scheduler."""

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        self.config = config

        global_cond_dim = config.robot_state_feature.shape[0]
        if config.image_features:
            num_images = len(config.image_features)
            if config.use_separate_rgb_encoder_per_camera:
                encoders = [DiffusionRgbEncoder(config) for _ in range(num_images)]
                self.rgb_encoder = nn.ModuleList(encoders)
                global_cond_dim += encoders[0].feature_dim * num_images
            else:
                self.rgb_encoder = DiffusionRgbEncoder(config)
                global_cond_dim += self.rgb_encoder.feature_dim * num_images
        if config.env_state_feature:
            global_cond_dim += config.env_state_feature.shape[0]

        self.unet = DiffusionConditionalUnet1d(config, global_cond_dim=global_cond_dim * config.n_obs_steps)
        # LeRobot wraps the U-Net module itself (its keys then gain "_orig_mod."); compiling the bound
        # forward keeps the parameter names of an uncompiled model, so checkpoints stay interchangeable.
        # (A compiled function is not a module, so it adds no entries to the state dict.)
        self._compiled_unet: Callable[..., Tensor] | None = None
        if config.compile_model:
            self._compiled_unet = torch.compile(self.unet.forward, mode=config.compile_mode)

        self.noise_scheduler = noise_scheduler_for(config)
        if config.num_inference_steps is None:
            self.num_inference_steps = self.noise_scheduler.num_train_timesteps
        else:
            self.num_inference_steps = config.num_inference_steps

    def _run_unet(self, x: Tensor, timestep: Tensor, global_cond: Tensor | None) -> Tensor:
        if self._compiled_unet is not None:
            return self._compiled_unet(x, timestep, global_cond=global_cond)
        return self.unet(x, timestep, global_cond=global_cond)

    # ----- inference -----

    def conditional_sample(
        self,
        batch_size: int,
        global_cond: Tensor | None = None,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        device = get_device_from_parameters(self)
        dtype = get_dtype_from_parameters(self)
        shape = (batch_size, self.config.horizon, self.config.action_feature.shape[0])
        if noise is not None:
            if tuple(noise.shape) != shape:
                raise PolicyFeatureError(f"diffusion: noise has shape {tuple(noise.shape)}, expected {shape}")
            sample = noise
        else:
            sample = torch.randn(size=shape, dtype=dtype, device=device, generator=generator)

        self.noise_scheduler.set_timesteps(self.num_inference_steps)
        for t in self.noise_scheduler.timesteps:
            model_output = self._run_unet(
                sample, torch.full(sample.shape[:1], t, dtype=torch.long, device=sample.device), global_cond
            )
            # x_t -> x_{t-1}
            sample = self.noise_scheduler.step(model_output, t, sample, generator=generator).prev_sample
        return sample

    def _prepare_global_conditioning(self, batch: dict[str, Tensor]) -> Tensor:
        """State, per-camera image features and environment state of every observation step,
        concatenated and flattened to (B, global_cond_dim)."""
        batch_size, n_obs_steps = batch[OBS_STATE].shape[:2]
        global_cond_feats = [batch[OBS_STATE]]
        if self.config.image_features:
            images = batch[OBS_IMAGES]  # (B, S, N, C, H, W)
            num_cameras = images.shape[2]
            if self.config.use_separate_rgb_encoder_per_camera:
                # Camera first, batch and time merged: each camera goes through its own encoder.
                images_per_camera = images.permute(2, 0, 1, 3, 4, 5).reshape(
                    num_cameras, batch_size * n_obs_steps, *images.shape[3:]
                )
                features = torch.cat(
                    [encoder(cam) for encoder, cam in zip(self.rgb_encoder, images_per_camera, strict=True)]
                )
                # (N*B*S, D) -> (B, S, N*D): the cameras' features side by side.
                feature_dim = features.shape[-1]
                img_features = (
                    features.reshape(num_cameras, batch_size, n_obs_steps, feature_dim)
                    .permute(1, 2, 0, 3)
                    .reshape(batch_size, n_obs_steps, num_cameras * feature_dim)
                )
            else:
                features = self.rgb_encoder(
                    images.reshape(batch_size * n_obs_steps * num_cameras, *images.shape[3:])
                )
                img_features = features.reshape(batch_size, n_obs_steps, -1)
            global_cond_feats.append(img_features)
        if self.config.env_state_feature:
            global_cond_feats.append(batch[OBS_ENV_STATE])
        return torch.cat(global_cond_feats, dim=-1).flatten(start_dim=1)

    def generate_actions(self, batch: dict[str, Tensor], noise: Tensor | None = None) -> Tensor:
        """(B, n_action_steps, action_dim) from ``batch`` holding (B, n_obs_steps, ...) state,
        stacked images (B, n_obs_steps, N, C, H, W) and/or environment state."""
        batch_size, n_obs_steps = batch[OBS_STATE].shape[:2]
        if n_obs_steps != self.config.n_obs_steps:
            raise PolicyFeatureError(
                f"diffusion: {OBS_STATE!r} holds {n_obs_steps} observation steps (shape "
                f"{tuple(batch[OBS_STATE].shape)}), the config's n_obs_steps is {self.config.n_obs_steps}"
            )
        global_cond = self._prepare_global_conditioning(batch)
        actions = self.conditional_sample(batch_size, global_cond=global_cond, noise=noise)
        # The actions from the current observation step on.
        start = n_obs_steps - 1
        end = start + self.config.n_action_steps
        return actions[:, start:end]

    # ----- training -----

    def compute_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """MSE between the U-Net's prediction and its target (the noise for ``epsilon``, the clean
        actions for ``sample``) at one random noise level per batch item."""
        for key in (OBS_STATE, ACTION, ACTION_IS_PAD):
            if key not in batch:
                raise PolicyFeatureError(
                    f"diffusion: a training batch needs {key!r} (batch keys: {sorted(batch)})"
                )
        if OBS_IMAGES not in batch and OBS_ENV_STATE not in batch:
            raise PolicyFeatureError(f"diffusion: a training batch needs images or {OBS_ENV_STATE!r}")
        if batch[OBS_STATE].ndim != 3 or batch[OBS_STATE].shape[1] != self.config.n_obs_steps:
            raise PolicyFeatureError(
                f"diffusion: {OBS_STATE!r} must be (B, n_obs_steps={self.config.n_obs_steps}, state_dim), "
                f"got {tuple(batch[OBS_STATE].shape)}"
            )
        if batch[ACTION].ndim != 3 or batch[ACTION].shape[1] != self.config.horizon:
            raise PolicyFeatureError(
                f"diffusion: {ACTION!r} must be (B, horizon={self.config.horizon}, action_dim), "
                f"got {tuple(batch[ACTION].shape)}"
            )

        global_cond = self._prepare_global_conditioning(batch)

        trajectory = batch[ACTION]
        eps = torch.randn(trajectory.shape, device=trajectory.device)
        timesteps = torch.randint(
            low=0,
            high=self.noise_scheduler.num_train_timesteps,
            size=(trajectory.shape[0],),
            device=trajectory.device,
        ).long()
        noisy_trajectory = self.noise_scheduler.add_noise(trajectory, eps, timesteps)

        pred = self._run_unet(noisy_trajectory, timesteps, global_cond)

        target = eps if self.config.prediction_type == "epsilon" else batch[ACTION]
        loss = F.mse_loss(pred, target, reduction="none")

        # Padded actions (copies past an episode's end) are left out when asked.
        if self.config.do_mask_loss_for_padding:
            mask = (~batch[ACTION_IS_PAD]).unsqueeze(-1)
            num_valid = mask.sum() * loss.shape[-1]
            return (loss * mask).sum() / num_valid.clamp_min(1)
        return loss.mean()


class SpatialSoftmax(nn.Module):
    """Spatial soft-argmax (Finn et al., "Deep Spatial Autoencoders for Visuomotor Learning"), as
    robomimic and LeRobot have it: an optional 1x1 convolution to ``num_kp`` maps, a softmax over each
    map's pixels, and the expected (x, y) under it on a [-1, 1] grid - one keypoint per map.

    The grid is built with numpy's linspace, as LeRobot does: torch.linspace rounds some points
    differently, which LeRobot found to cost pretrained models a little success.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_kp: int | None = None):
        super().__init__()
        if len(input_shape) != 3:
            raise PolicyFeatureError(
                f"SpatialSoftmax needs a (C, H, W) input shape, got {tuple(input_shape)}"
            )
        self._in_c, self._in_h, self._in_w = (int(d) for d in input_shape)
        if num_kp is not None:
            self.nets = nn.Conv2d(self._in_c, num_kp, kernel_size=1)
            self._out_c = num_kp
        else:
            self.nets = None
            self._out_c = self._in_c
        pos_x, pos_y = np.meshgrid(np.linspace(-1.0, 1.0, self._in_w), np.linspace(-1.0, 1.0, self._in_h))
        pos_x = torch.from_numpy(pos_x.reshape(self._in_h * self._in_w, 1)).float()
        pos_y = torch.from_numpy(pos_y.reshape(self._in_h * self._in_w, 1)).float()
        self.register_buffer("pos_grid", torch.cat([pos_x, pos_y], dim=1))

    def forward(self, features: Tensor) -> Tensor:
        """(B, C, H, W) feature maps -> (B, K, 2) keypoints."""
        if self.nets is not None:
            features = self.nets(features)
        features = features.reshape(-1, self._in_h * self._in_w)
        attention = F.softmax(features, dim=-1)
        expected_xy = attention @ self.pos_grid
        return expected_xy.view(-1, self._out_c, 2)


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """torchvision's tensor ``Resize(size)``: bilinear, antialiased, unchanged when already that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.dtype not in (torch.float32, torch.float64):
        raise PolicyFeatureError(f"diffusion: images must be float tensors to be resized, got {x.dtype}")
    return F.interpolate(x, size=list(size), mode="bilinear", align_corners=False, antialias=True)


def _center_crop(x: Tensor, size: tuple[int, int]) -> Tensor:
    """torchvision's ``CenterCrop`` for an image at least as large as ``size``."""
    h, w = x.shape[-2:]
    th, tw = size
    if th > h or tw > w:
        raise PolicyFeatureError(f"diffusion: crop {tuple(size)} does not fit a {h}x{w} image")
    top = round((h - th) / 2.0)
    left = round((w - tw) / 2.0)
    return x[..., top : top + th, left : left + tw]


def _random_crop(x: Tensor, size: tuple[int, int]) -> Tensor:
    """torchvision's ``RandomCrop``: one offset for the whole batch, drawn with two ``torch.randint``
    calls (rows, then columns), none when the crop is the whole image."""
    h, w = x.shape[-2:]
    th, tw = size
    if th > h or tw > w:
        raise PolicyFeatureError(f"diffusion: crop {tuple(size)} does not fit a {h}x{w} image")
    if h == th and w == tw:
        return x
    top = torch.randint(0, h - th + 1, size=(1,)).item()
    left = torch.randint(0, w - tw + 1, size=(1,)).item()
    return x[..., top : top + th, left : left + tw]


class DiffusionRgbEncoder(nn.Module):
    """One camera image -> a feature vector: optional resize and crop (random while training, centred
    in eval), ResNet trunk (BatchNorm or GroupNorm), spatial soft-argmax, Linear + ReLU."""

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        self.resize_shape = tuple(config.resize_shape) if config.resize_shape is not None else None
        self.crop_shape = tuple(config.crop_shape) if config.crop_shape is not None else None
        self.do_crop = self.crop_shape is not None
        self.crop_is_random = bool(config.crop_is_random)

        if config.use_group_norm and config.pretrained_backbone_weights:
            raise PolicyFeatureError(
                "You can't replace BatchNorm in a pretrained model without ruining the weights! "
                "(use_group_norm=True needs pretrained_backbone_weights=None)"
            )
        backbone_model = make_resnet(config.vision_backbone, config.pretrained_backbone_weights)
        # The convolutional trunk: every child but the average pool and the classifier.
        self.backbone = nn.Sequential(*(list(backbone_model.children())[:-2]))
        if config.use_group_norm:
            self.backbone = _replace_submodules(
                self.backbone,
                predicate=lambda m: isinstance(m, nn.BatchNorm2d),
                func=lambda m: nn.GroupNorm(num_groups=m.num_features // 16, num_channels=m.num_features),
            )

        # The feature map's shape from a dry run at the size the backbone will see (resize, then crop).
        images_shape = next(iter(config.image_features.values())).shape
        if self.crop_shape is not None:
            dummy_h_w = self.crop_shape
        elif self.resize_shape is not None:
            dummy_h_w = self.resize_shape
        else:
            dummy_h_w = tuple(images_shape[1:])
        # As LeRobot: a training-mode pass in inference mode (it also moves BatchNorm's running
        # statistics once, so a fresh model here starts from the same statistics as LeRobot's).
        with torch.inference_mode():
            feature_map_shape = tuple(self.backbone(torch.zeros(1, images_shape[0], *dummy_h_w)).shape[1:])

        self.pool = SpatialSoftmax(feature_map_shape, num_kp=config.spatial_softmax_num_keypoints)
        self.feature_dim = config.spatial_softmax_num_keypoints * 2
        self.out = nn.Linear(config.spatial_softmax_num_keypoints * 2, self.feature_dim)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) images in [0, 1] (or normalised) -> (B, feature_dim)."""
        if self.resize_shape is not None:
            x = _resize(x, self.resize_shape)
        if self.do_crop:
            if self.training and self.crop_is_random:
                x = _random_crop(x, self.crop_shape)
            else:
                x = _center_crop(x, self.crop_shape)
        x = torch.flatten(self.pool(self.backbone(x)), start_dim=1)
        return self.relu(self.out(x))


def _replace_submodules(
    root_module: nn.Module, predicate: Callable[[nn.Module], bool], func: Callable[[nn.Module], nn.Module]
) -> nn.Module:
    """``root_module`` with every submodule matching ``predicate`` replaced by ``func(submodule)``,
    in place, under the same name (so parameter names do not change)."""
    if predicate(root_module):
        return func(root_module)
    targets = [
        name.split(".") for name, m in root_module.named_modules(remove_duplicate=True) if predicate(m)
    ]
    for *parents, leaf in targets:
        parent = root_module.get_submodule(".".join(parents)) if parents else root_module
        if isinstance(parent, nn.Sequential):
            parent[int(leaf)] = func(parent[int(leaf)])
        else:
            setattr(parent, leaf, func(getattr(parent, leaf)))
    return root_module


class DiffusionSinusoidalPosEmb(nn.Module):
    """Sinusoidal embedding of the diffusion timestep ("Attention Is All You Need"): sin then cos."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        half_dim = self.dim // 2
        emb = math.log(10000) / (half_dim - 1)
        emb = torch.exp(torch.arange(half_dim, device=x.device) * -emb)
        emb = x.unsqueeze(-1) * emb.unsqueeze(0)
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class DiffusionConv1dBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, inp_channels: int, out_channels: int, kernel_size: int, n_groups: int = 8):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(inp_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_channels),
            nn.Mish(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class DiffusionConditionalResidualBlock1d(nn.Module):
    """Two Conv1d blocks with a residual connection; FiLM (per-channel scale and bias, or bias only)
    from the conditioning vector between them."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_dim: int,
        kernel_size: int = 3,
        n_groups: int = 8,
        use_film_scale_modulation: bool = False,
    ):
        super().__init__()
        self.use_film_scale_modulation = use_film_scale_modulation
        self.out_channels = out_channels
        self.conv1 = DiffusionConv1dBlock(in_channels, out_channels, kernel_size, n_groups=n_groups)
        cond_channels = out_channels * 2 if use_film_scale_modulation else out_channels
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, cond_channels))
        self.conv2 = DiffusionConv1dBlock(out_channels, out_channels, kernel_size, n_groups=n_groups)
        # A 1x1 convolution matches the residual's channels when they change.
        self.residual_conv = (
            nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """(B, in_channels, T), (B, cond_dim) -> (B, out_channels, T)."""
        out = self.conv1(x)
        cond_embed = self.cond_encoder(cond).unsqueeze(-1)
        if self.use_film_scale_modulation:
            scale = cond_embed[:, : self.out_channels]
            bias = cond_embed[:, self.out_channels :]
            out = scale * out + bias
        else:
            out = out + cond_embed
        out = self.conv2(out)
        return out + self.residual_conv(x)


class DiffusionConditionalUnet1d(nn.Module):
    """1-D convolutional U-Net over the action sequence, FiLM-conditioned on [timestep embedding,
    global condition] (no local conditioning)."""

    def __init__(self, config: DiffusionConfig, global_cond_dim: int):
        super().__init__()
        self.config = config
        self.diffusion_step_encoder = nn.Sequential(
            DiffusionSinusoidalPosEmb(config.diffusion_step_embed_dim),
            nn.Linear(config.diffusion_step_embed_dim, config.diffusion_step_embed_dim * 4),
            nn.Mish(),
            nn.Linear(config.diffusion_step_embed_dim * 4, config.diffusion_step_embed_dim),
        )
        cond_dim = config.diffusion_step_embed_dim + global_cond_dim

        # (in, out) channels of each down stage; the up stages mirror them.
        action_dim = config.action_feature.shape[0]
        in_out = [
            (action_dim, config.down_dims[0]),
            *zip(config.down_dims[:-1], config.down_dims[1:], strict=True),
        ]
        block_kwargs = {
            "cond_dim": cond_dim,
            "kernel_size": config.kernel_size,
            "n_groups": config.n_groups,
            "use_film_scale_modulation": config.use_film_scale_modulation,
        }
        self.down_modules = nn.ModuleList([])
        for ind, (dim_in, dim_out) in enumerate(in_out):
            is_last = ind >= (len(in_out) - 1)
            self.down_modules.append(
                nn.ModuleList(
                    [
                        DiffusionConditionalResidualBlock1d(dim_in, dim_out, **block_kwargs),
                        DiffusionConditionalResidualBlock1d(dim_out, dim_out, **block_kwargs),
                        # Halve the time axis after every stage but the last.
                        nn.Conv1d(dim_out, dim_out, 3, 2, 1) if not is_last else nn.Identity(),
                    ]
                )
            )
        self.mid_modules = nn.ModuleList(
            [
                DiffusionConditionalResidualBlock1d(
                    config.down_dims[-1], config.down_dims[-1], **block_kwargs
                ),
                DiffusionConditionalResidualBlock1d(
                    config.down_dims[-1], config.down_dims[-1], **block_kwargs
                ),
            ]
        )
        self.up_modules = nn.ModuleList([])
        for ind, (dim_out, dim_in) in enumerate(reversed(in_out[1:])):
            # As LeRobot: compared with len(in_out), so every up stage upsamples.
            is_last = ind >= (len(in_out) - 1)
            self.up_modules.append(
                nn.ModuleList(
                    [
                        # Twice the channels: the matching down stage's skip features are concatenated.
                        DiffusionConditionalResidualBlock1d(dim_in * 2, dim_out, **block_kwargs),
                        DiffusionConditionalResidualBlock1d(dim_out, dim_out, **block_kwargs),
                        nn.ConvTranspose1d(dim_out, dim_out, 4, 2, 1) if not is_last else nn.Identity(),
                    ]
                )
            )
        self.final_conv = nn.Sequential(
            DiffusionConv1dBlock(config.down_dims[0], config.down_dims[0], kernel_size=config.kernel_size),
            nn.Conv1d(config.down_dims[0], action_dim, 1),
        )

    def forward(self, x: Tensor, timestep: Tensor | int, global_cond: Tensor | None = None) -> Tensor:
        """(B, T, action_dim) noisy actions, (B,) timesteps, (B, global_cond_dim) -> (B, T, action_dim)."""
        x = x.transpose(1, 2)  # channels (action dims) first for the 1-D convolutions
        timesteps_embed = self.diffusion_step_encoder(timestep)
        global_feature = (
            torch.cat([timesteps_embed, global_cond], dim=-1) if global_cond is not None else timesteps_embed
        )

        use_gc = self.config.gradient_checkpointing and self.training

        def run(block: nn.Module, h: Tensor) -> Tensor:
            if use_gc:
                return checkpoint(block, h, global_feature, use_reentrant=False)
            return block(h, global_feature)

        skips: list[Tensor] = []
        for resnet, resnet2, downsample in self.down_modules:
            x = run(resnet2, run(resnet, x))
            skips.append(x)
            x = downsample(x)
        for mid_module in self.mid_modules:
            x = run(mid_module, x)
        for resnet, resnet2, upsample in self.up_modules:
            x = torch.cat((x, skips.pop()), dim=1)
            x = run(resnet2, run(resnet, x))
            x = upsample(x)
        x = self.final_conv(x)
        return x.transpose(1, 2)


__all__ = [
    "DiffusionConditionalUnet1d",
    "DiffusionModel",
    "DiffusionPolicy",
    "DiffusionRgbEncoder",
    "SpatialSoftmax",
]
