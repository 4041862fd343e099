"""Configuration of Diffusion Policy: LeRobot 0.6.1's ``DiffusionConfig``, field for field.

The fields, their defaults, their order and their validation are LeRobot's, so a config.json written
by LeRobot parses here into the same model and one written here parses in LeRobot. The training
presets are LeRobot's too: Adam (lr 1e-4, betas (0.95, 0.999), eps 1e-8, weight decay 1e-6) and
diffusers' ``cosine`` learning-rate schedule after 500 warmup steps. Where LeRobot would fail later
with an AttributeError or an assertion (no ``observation.state``, no action feature), validation here
raises a PolicyFeatureError naming the key.
"""

from dataclasses import dataclass, field

from dexloop.errors import PolicyConfigError, PolicyFeatureError
from dexloop.policies.config import PreTrainedConfig
from dexloop.policies.types import NormalizationMode
from dexloop.policies.utils import ACTION, OBS_STATE
from dexloop.training.optimizers import AdamConfig
from dexloop.training.schedulers import DiffuserSchedulerConfig


@PreTrainedConfig.register_subclass("diffusion")
@dataclass
class DiffusionConfig(PreTrainedConfig):
    """Diffusion Policy ("Diffusion Policy: Visuomotor Policy Learning via Action Diffusion", Chi et al.).

    Defaults are LeRobot's (PushT: proprioception and one camera). Inputs: ``observation.state`` is
    required, plus at least one ``observation.image*`` camera (all of the same shape) and/or
    ``observation.environment_state``; output ``action``.

    Args:
        n_obs_steps: observation steps the policy looks at (the current one and those before it).
        horizon: length of the action sequence the model denoises (from the first observation step).
        n_action_steps: actions executed per model call (requires n_action_steps <= horizon - n_obs_steps + 1
            to use them all).
        drop_n_last_frames: frames at the end of each episode the training sampler skips.
        vision_backbone: the ResNet variant encoding each camera ("resnet18").
        resize_shape: (H, W) to resize images to before the backbone, or None.
        crop_ratio: crop size as a fraction of ``resize_shape`` (1.0: no crop); only with resize_shape.
        crop_shape: (H, W) crop, random at training time (``crop_is_random``), centred in eval;
            derived from resize_shape and crop_ratio when resize_shape is set.
        pretrained_backbone_weights: torchvision weight name the backbone starts from, or None.
        use_group_norm: replace the backbone's BatchNorm by GroupNorm (channels // 16 groups).
        spatial_softmax_num_keypoints: keypoints of the spatial soft-argmax (features = 2 x this).
        use_separate_rgb_encoder_per_camera: one encoder per camera instead of a shared one.
        down_dims: channels of the U-Net's stages; the horizon must be a multiple of 2 ** len(down_dims).
        kernel_size / n_groups: U-Net convolution kernel and GroupNorm groups.
        diffusion_step_embed_dim: size of the diffusion-timestep embedding.
        use_film_scale_modulation: FiLM conditioning with scale and bias (else bias only).
        gradient_checkpointing: recompute the U-Net's residual blocks in the backward pass.
        noise_scheduler_type: "DDPM" or "DDIM".
        num_train_timesteps, beta_schedule, beta_start, beta_end: the forward noise schedule.
        prediction_type: what the U-Net predicts, "epsilon" (the noise) or "sample" (the actions).
        clip_sample / clip_sample_range: clip the predicted clean sample at each step (needs MIN_MAX actions).
        num_inference_steps: denoising steps at inference (None: num_train_timesteps).
        compile_model / compile_mode: torch.compile the U-Net.
        do_mask_loss_for_padding: leave padded actions out of the loss.
        optimizer_* / scheduler_*: the training presets.
    """

    # Inputs / output structure.
    n_obs_steps: int = 2
    horizon: int = 64
    n_action_steps: int = 32

    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.MEAN_STD,
            "STATE": NormalizationMode.MIN_MAX,
            "ACTION": NormalizationMode.MIN_MAX,
        }
    )

    # The original implementation does not sample the last 7 frames of an episode as a start
    # (horizon - n_action_steps - n_obs_steps + 1 for its PushT settings): less padding, better results.
    drop_n_last_frames: int = 7

    # Vision backbone.
    vision_backbone: str = "resnet18"
    resize_shape: tuple[int, int] | None = None
    crop_ratio: float = 1.0
    crop_shape: tuple[int, int] | None = None
    crop_is_random: bool = True
    pretrained_backbone_weights: str | None = "ResNet18_Weights.IMAGENET1K_V1"
    use_group_norm: bool = False
    spatial_softmax_num_keypoints: int = 32
    use_separate_rgb_encoder_per_camera: bool = True
    # U-Net.
    down_dims: tuple[int, ...] = (512, 1024, 2048)
    kernel_size: int = 5
    n_groups: int = 8
    diffusion_step_embed_dim: int = 128
    use_film_scale_modulation: bool = True
    gradient_checkpointing: bool = False
    # Noise scheduler.
    noise_scheduler_type: str = "DDPM"
    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 0.0001
    beta_end: float = 0.02
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0

    # Inference.
    num_inference_steps: int | None = None

    # Optimization.
    compile_model: bool = False
    compile_mode: str = "reduce-overhead"

    # Loss computation.
    do_mask_loss_for_padding: bool = False

    # Training presets.
    optimizer_lr: float = 1e-4
    optimizer_betas: tuple = (0.95, 0.999)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 1e-6
    scheduler_name: str = "cosine"
    scheduler_warmup_steps: int = 500

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.vision_backbone.startswith("resnet"):
            raise PolicyConfigError(
                f"`vision_backbone` must be one of the ResNet variants. Got {self.vision_backbone}."
            )
        supported_prediction_types = ["epsilon", "sample"]
        if self.prediction_type not in supported_prediction_types:
            raise PolicyConfigError(
                f"`prediction_type` must be one of {supported_prediction_types}. Got {self.prediction_type}."
            )
        supported_noise_schedulers = ["DDPM", "DDIM"]
        if self.noise_scheduler_type not in supported_noise_schedulers:
            raise PolicyConfigError(
                f"`noise_scheduler_type` must be one of {supported_noise_schedulers}. "
                f"Got {self.noise_scheduler_type}."
            )
        if self.resize_shape is not None and (
            len(self.resize_shape) != 2 or any(d <= 0 for d in self.resize_shape)
        ):
            raise PolicyConfigError(
                f"`resize_shape` must be a pair of positive integers. Got {self.resize_shape}."
            )
        if not (0 < self.crop_ratio <= 1.0):
            raise PolicyConfigError(f"`crop_ratio` must be in (0, 1]. Got {self.crop_ratio}.")
        if self.resize_shape is not None:
            if self.crop_ratio < 1.0:
                self.crop_shape = (
                    int(self.resize_shape[0] * self.crop_ratio),
                    int(self.resize_shape[1] * self.crop_ratio),
                )
            else:
                # resize + ratio 1.0 means no crop, whatever crop_shape said.
                self.crop_shape = None
        if self.crop_shape is not None and (self.crop_shape[0] <= 0 or self.crop_shape[1] <= 0):
            raise PolicyConfigError(f"`crop_shape` must have positive dimensions. Got {self.crop_shape}.")
        # The U-Net halves the time axis once per stage.
        downsampling_factor = 2 ** len(self.down_dims)
        if self.horizon % downsampling_factor != 0:
            raise PolicyConfigError(
                "The horizon should be an integer multiple of the downsampling factor (which is determined "
                f"by `len(down_dims)`). Got self.horizon={self.horizon} and self.down_dims={self.down_dims}"
            )

    def get_optimizer_preset(self) -> AdamConfig:
        return AdamConfig(
            lr=self.optimizer_lr,
            betas=self.optimizer_betas,
            eps=self.optimizer_eps,
            weight_decay=self.optimizer_weight_decay,
        )

    def get_scheduler_preset(self) -> DiffuserSchedulerConfig:
        return DiffuserSchedulerConfig(name=self.scheduler_name, num_warmup_steps=self.scheduler_warmup_steps)

    def validate_features(self) -> None:
        if self.robot_state_feature is None:
            raise PolicyFeatureError(
                f"Diffusion Policy needs {OBS_STATE!r} (type STATE) among the input features; "
                f"got {sorted(self.input_features or {})}"
            )
        if self.action_feature is None:
            raise PolicyFeatureError(
                f"Diffusion Policy needs {ACTION!r} (type ACTION) among the output features; "
                f"got {sorted(self.output_features or {})}"
            )
        if len(self.image_features) == 0 and self.env_state_feature is None:
            raise PolicyFeatureError(
                "You must provide at least one image or the environment state among the inputs."
            )
        for key, image_ft in self.image_features.items():
            if len(image_ft.shape) != 3:
                raise PolicyFeatureError(f"`{key}` must have a (C, H, W) shape, got {tuple(image_ft.shape)}")
        if self.resize_shape is None and self.crop_shape is not None:
            for key, image_ft in self.image_features.items():
                if self.crop_shape[0] > image_ft.shape[1] or self.crop_shape[1] > image_ft.shape[2]:
                    raise PolicyFeatureError(
                        f"`crop_shape` should fit within the image shapes. Got {self.crop_shape} "
                        f"for `crop_shape` and {image_ft.shape} for `{key}`."
                    )
        if len(self.image_features) > 0:
            first_image_key, first_image_ft = next(iter(self.image_features.items()))
            for key, image_ft in self.image_features.items():
                if tuple(image_ft.shape) != tuple(first_image_ft.shape):
                    raise PolicyFeatureError(
                        f"`{key}` (shape {tuple(image_ft.shape)}) does not match `{first_image_key}` "
                        f"(shape {tuple(first_image_ft.shape)}), but we expect all image shapes to match."
                    )

    @property
    def observation_delta_indices(self) -> list:
        return list(range(1 - self.n_obs_steps, 1))

    @property
    def action_delta_indices(self) -> list:
        return list(range(1 - self.n_obs_steps, 1 - self.n_obs_steps + self.horizon))

    @property
    def reward_delta_indices(self) -> None:
        return None


__all__ = ["DiffusionConfig"]
