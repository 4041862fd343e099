"""ACT's configuration (``type: "act"``), with LeRobot 0.6.1's fields, defaults and validation.

Defaults are LeRobot's, set for bimanual ALOHA tasks: 100-step action chunks, a ResNet-18 image
backbone, a 4-layer transformer encoder, one decoder layer and a 4-layer VAE encoder of width 512. The
fields that depend on the robot are ``input_features`` / ``output_features`` (filled from the dataset
by ``make_policy``). Inputs: at least one image (``observation.image`` or ``observation.images.<cam>``,
all of one shape) and/or ``observation.environment_state``; ``observation.state`` is optional;
``action`` is the output.
"""

from dataclasses import dataclass, field

from dexloop.errors import PolicyConfigError, PolicyFeatureError
from dexloop.policies.config import PreTrainedConfig
from dexloop.policies.types import NormalizationMode


@PreTrainedConfig.register_subclass("act")
@dataclass
class ACTConfig(PreTrainedConfig):
    """Action Chunking Transformer (Zhao et al., 2023) as LeRobot configures it.

    Args:
        chunk_size: length of the predicted action chunk, in environment steps.
        n_action_steps: how many actions of a chunk are executed before predicting again (<= chunk_size;
            1 with temporal ensembling).
        vision_backbone / pretrained_backbone_weights: the torchvision ResNet and its weights (a local
            file or torchvision's enum name, see dexloop.policies.backbones.resnet; None: random).
        replace_final_stride_with_dilation: dilate ResNet's last stage instead of striding.
        pre_norm: pre-LayerNorm transformer blocks (LeRobot's default is post-norm).
        dim_model, n_heads, dim_feedforward, feedforward_activation: transformer width, heads, MLP width
            and activation ("relu", "gelu", "glu").
        n_encoder_layers, n_decoder_layers: transformer depth.
        use_vae, latent_dim, n_vae_encoder_layers: the variational objective and its encoder.
        temporal_ensemble_coeff: exponential weight of temporal ensembling (None: off; the paper uses 0.01).
        dropout, kl_weight: dropout of the transformer layers and the KL term's weight in the loss.
        optimizer_lr, optimizer_weight_decay, optimizer_lr_backbone: the AdamW training preset.
    """

    n_obs_steps: int = 1
    chunk_size: int = 100
    n_action_steps: int = 100

    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.MEAN_STD,
            "STATE": NormalizationMode.MEAN_STD,
            "ACTION": NormalizationMode.MEAN_STD,
        }
    )

    vision_backbone: str = "resnet18"
    pretrained_backbone_weights: str | None = "ResNet18_Weights.IMAGENET1K_V1"
    replace_final_stride_with_dilation: int = False
    pre_norm: bool = False
    dim_model: int = 512
    n_heads: int = 8
    dim_feedforward: int = 3200
    feedforward_activation: str = "relu"
    n_encoder_layers: int = 4
    n_decoder_layers: int = 1
    use_vae: bool = True
    latent_dim: int = 32
    n_vae_encoder_layers: int = 4

    temporal_ensemble_coeff: float | None = None

    dropout: float = 0.1
    kl_weight: float = 10.0

    optimizer_lr: float = 1e-5
    optimizer_weight_decay: float = 1e-4
    optimizer_lr_backbone: float = 1e-5

    def __post_init__(self):
        super().__post_init__()
        if not self.vision_backbone.startswith("resnet"):
            raise PolicyConfigError(
                f"`vision_backbone` must be one of the ResNet variants. Got {self.vision_backbone}."
            )
        if self.temporal_ensemble_coeff is not None and self.n_action_steps > 1:
            raise PolicyConfigError(
                "`n_action_steps` must be 1 when using temporal ensembling. This is because the policy needs to be "
                "queried every step to compute the ensembled action."
            )
        if self.n_action_steps > self.chunk_size:
            raise PolicyConfigError(
                "The chunk size is the upper bound for the number of action steps per model invocation. Got "
                f"{self.n_action_steps} for `n_action_steps` and {self.chunk_size} for `chunk_size`."
            )
        if self.n_obs_steps != 1:
            raise PolicyConfigError(
                f"Multiple observation steps not handled yet. Got `nobs_steps={self.n_obs_steps}`"
            )
        if self.dim_model % self.n_heads != 0:
            raise PolicyConfigError(
                f"dim_model ({self.dim_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.feedforward_activation not in ("relu", "gelu", "glu"):
            raise PolicyConfigError(
                f"feedforward_activation should be relu/gelu/glu, not {self.feedforward_activation}."
            )

    def get_optimizer_preset(self):
        from dexloop.training.optimizers import AdamWConfig

        return AdamWConfig(lr=self.optimizer_lr, weight_decay=self.optimizer_weight_decay)

    def get_scheduler_preset(self) -> None:
        return None

    def validate_features(self) -> None:
        if not self.image_features and not self.env_state_feature:
            raise PolicyFeatureError(
                "You must provide at least one image or the environment state among the inputs."
            )
        if self.action_feature is None:
            raise PolicyFeatureError("ACT needs an 'action' output feature (output_features has none).")
        shapes = {tuple(ft.shape) for ft in self.image_features.values()}
        areas = {s[1] * s[2] for s in shapes if len(s) == 3}
        if len(areas) > 1:
            raise PolicyFeatureError(
                f"ACT's cameras must give feature maps of one size (equal H*W); image features: "
                f"{ {k: tuple(ft.shape) for k, ft in self.image_features.items()} }"
            )

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list:
        return list(range(self.chunk_size))

    @property
    def reward_delta_indices(self) -> None:
        return None
