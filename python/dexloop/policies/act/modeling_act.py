"""Action Chunking Transformer (ACT) policy, checkpoint-compatible with LeRobot 0.6.1.

ACT (Zhao et al., "Learning Fine-Grained Bimanual Manipulation with Low-Cost Hardware", 2023) predicts a
chunk of ``chunk_size`` future actions from the current observation:

- each camera image goes through a ResNet (frozen batch norm) to its ``layer4`` feature map, projected
  to ``dim_model`` by a 1×1 convolution, each pixel a token with a 2-D sinusoidal position embedding;
- the transformer encoder reads [latent, robot state, environment state, image tokens...] (learned
  1-D position embeddings for the non-image tokens; position embeddings are added to queries and keys
  only, DETR style);
- the decoder turns ``chunk_size`` zero queries with learned position embeddings into the actions,
  cross-attending to the encoder's output;
- for training with ``use_vae``, a BERT-like VAE encoder reads [CLS, state, actions] and gives the
  latent's distribution; the sample feeds the latent token (zeros at inference). The loss is the L1
  error over non-padded steps plus ``kl_weight`` × KL divergence.

The module tree, parameter names (``model.encoder.layers.0.self_attn.in_proj_weight`` ...) and the
order of operations are LeRobot's, so LeRobot checkpoints load, give the same actions, and, in train
mode with the same torch seed, the same dropout draws and VAE sample. ``select_action`` runs the
chunk from a queue (``n_action_steps`` at a time) or, with ``temporal_ensemble_coeff``, averages the
overlapping chunks of successive steps with exponential weights.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from itertools import chain

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dexloop.errors import PolicyConfigError, PolicyFeatureError
from dexloop.policies.act.configuration_act import ACTConfig
from dexloop.policies.backbones.resnet import FrozenBatchNorm2d, IntermediateLayerGetter, make_resnet
from dexloop.policies.pretrained import PreTrainedPolicy
from dexloop.policies.utils import ACTION, OBS_ENV_STATE, OBS_IMAGES, OBS_STATE, require_batch_keys


class ACTPolicy(PreTrainedPolicy):
    """ACT policy: the ACT network, the action queue and temporal ensembling, and the training loss."""

    config_class = ACTConfig
    name = "act"

    def __init__(self, config: ACTConfig, **kwargs):
        super().__init__(config)
        config.validate_features()
        self.config = config
        self.model = ACT(config)
        if config.temporal_ensemble_coeff is not None:
            self.temporal_ensembler = ACTTemporalEnsembler(config.temporal_ensemble_coeff, config.chunk_size)
        self.reset()

    def get_optim_params(self) -> list[dict]:
        """Two parameter groups: everything but the backbone, and the backbone at optimizer_lr_backbone."""
        return [
            {
                "params": [
                    p
                    for n, p in self.named_parameters()
                    if not n.startswith("model.backbone") and p.requires_grad
                ]
            },
            {
                "params": [
                    p
                    for n, p in self.named_parameters()
                    if n.startswith("model.backbone") and p.requires_grad
                ],
                "lr": self.config.optimizer_lr_backbone,
            },
        ]

    def reset(self) -> None:
        """Forgets the queued actions (or the ensemble); call it when an episode starts."""
        if self.config.temporal_ensemble_coeff is not None:
            self.temporal_ensembler.reset()
        else:
            self._action_queue = deque(maxlen=self.config.n_action_steps)

    def _input_keys(self) -> list[str]:
        keys = list(self.config.image_features)
        if self.config.robot_state_feature:
            keys.append(OBS_STATE)
        if self.config.env_state_feature:
            keys.append(OBS_ENV_STATE)
        return keys

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor]) -> Tensor:
        """The next (normalised) action, ``(B, action_dim)``: popped from the queue, which is refilled
        with the first ``n_action_steps`` of a new chunk when empty; with temporal ensembling, a new
        chunk every step blended into the running ensemble."""
        self.eval()  # the policy may have been put in train mode while the queue was consumed
        if self.config.temporal_ensemble_coeff is not None:
            actions = self.predict_action_chunk(batch)
            return self.temporal_ensembler.update(actions)
        if len(self._action_queue) == 0:
            actions = self.predict_action_chunk(batch)[:, : self.config.n_action_steps]
            # (B, n_action_steps, action_dim) -> a queue of n_action_steps tensors of (B, action_dim).
            self._action_queue.extend(actions.transpose(0, 1))
        return self._action_queue.popleft()

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor]) -> Tensor:
        """The (normalised) action chunk, ``(B, chunk_size, action_dim)``."""
        self.eval()
        require_batch_keys(batch, self._input_keys(), "ACT")
        if self.config.image_features:
            batch = dict(batch)  # a shallow copy, so the caller's dict does not gain a key
            batch[OBS_IMAGES] = [batch[key] for key in self.config.image_features]
        return self.model(batch)[0]

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        """Loss of a normalised training batch and ``{"l1_loss", "kld_loss"}`` (floats)."""
        require_batch_keys(batch, [*self._input_keys(), ACTION, "action_is_pad"], "ACT")
        if self.config.image_features:
            batch = dict(batch)
            batch[OBS_IMAGES] = [batch[key] for key in self.config.image_features]

        actions_hat, (mu_hat, log_sigma_x2_hat) = self.model(batch)

        abs_err = F.l1_loss(batch[ACTION], actions_hat, reduction="none")
        valid_mask = ~batch["action_is_pad"].unsqueeze(-1)
        num_valid = valid_mask.sum() * abs_err.shape[-1]
        l1_loss = (abs_err * valid_mask).sum() / num_valid.clamp_min(1)

        loss_dict = {"l1_loss": l1_loss.item()}
        if self.config.use_vae and log_sigma_x2_hat is not None:
            # KL(q(z|x) || N(0, I)), summed over the latent dimensions, averaged over the batch.
            mean_kld = (-0.5 * (1 + log_sigma_x2_hat - mu_hat.pow(2) - log_sigma_x2_hat.exp())).sum(-1).mean()
            loss_dict["kld_loss"] = mean_kld.item()
            loss = l1_loss + mean_kld * self.config.kl_weight
        else:
            loss = l1_loss
        return loss, loss_dict


class ACTTemporalEnsembler:
    """Temporal ensembling (Algorithm 2 of the ACT paper), computed online.

    Every step gets a new chunk; the action for step t is the weighted mean of all predictions made for
    t, with weights w_i = exp(-coeff * i), w_0 for the oldest prediction (coeff > 0 favours older
    predictions, < 0 newer ones, 0 weighs them alike). The running mean of each future step and the
    number of predictions in it are kept, so each update is O(chunk)."""

    def __init__(self, temporal_ensemble_coeff: float, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.ensemble_weights = torch.exp(-temporal_ensemble_coeff * torch.arange(chunk_size))
        self.ensemble_weights_cumsum = torch.cumsum(self.ensemble_weights, dim=0)
        self.reset()

    def reset(self) -> None:
        self.ensembled_actions: Tensor | None = None
        # (chunk_size, 1): how many predictions each future step's mean holds.
        self.ensembled_actions_count: Tensor | None = None

    def update(self, actions: Tensor) -> Tensor:
        """Blends a ``(B, chunk_size, action_dim)`` chunk in and returns the next action ``(B, action_dim)``."""
        self.ensemble_weights = self.ensemble_weights.to(device=actions.device)
        self.ensemble_weights_cumsum = self.ensemble_weights_cumsum.to(device=actions.device)
        if self.ensembled_actions is None:
            self.ensembled_actions = actions.clone()
            self.ensembled_actions_count = torch.ones(
                (self.chunk_size, 1), dtype=torch.long, device=actions.device
            )
        else:
            # The means of the chunk_size - 1 steps already predicted take the new predictions in.
            self.ensembled_actions *= self.ensemble_weights_cumsum[self.ensembled_actions_count - 1]
            self.ensembled_actions += actions[:, :-1] * self.ensemble_weights[self.ensembled_actions_count]
            self.ensembled_actions /= self.ensemble_weights_cumsum[self.ensembled_actions_count]
            self.ensembled_actions_count = torch.clamp(self.ensembled_actions_count + 1, max=self.chunk_size)
            # The chunk's last step has no earlier prediction.
            self.ensembled_actions = torch.cat([self.ensembled_actions, actions[:, -1:]], dim=1)
            self.ensembled_actions_count = torch.cat(
                [self.ensembled_actions_count, torch.ones_like(self.ensembled_actions_count[-1:])]
            )
        action = self.ensembled_actions[:, 0]
        self.ensembled_actions = self.ensembled_actions[:, 1:]
        self.ensembled_actions_count = self.ensembled_actions_count[1:]
        return action


class ACT(nn.Module):
    """The ACT network: optional VAE encoder, image backbone, transformer encoder and decoder, action
    head. Tensors inside are sequence-first ``(S, B, D)``, as nn.MultiheadAttention's default."""

    def __init__(self, config: ACTConfig):
        super().__init__()
        self.config = config

        if config.use_vae:
            self.vae_encoder = ACTEncoder(config, is_vae_encoder=True)
            self.vae_encoder_cls_embed = nn.Embedding(1, config.dim_model)
            if config.robot_state_feature:
                self.vae_encoder_robot_state_input_proj = nn.Linear(
                    config.robot_state_feature.shape[0], config.dim_model
                )
            self.vae_encoder_action_input_proj = nn.Linear(config.action_feature.shape[0], config.dim_model)
            # CLS output -> (mean, 2 log sigma) of the latent.
            self.vae_encoder_latent_output_proj = nn.Linear(config.dim_model, config.latent_dim * 2)
            num_input_token_encoder = 1 + config.chunk_size + (1 if config.robot_state_feature else 0)
            self.register_buffer(
                "vae_encoder_pos_enc",
                create_sinusoidal_pos_embedding(num_input_token_encoder, config.dim_model).unsqueeze(0),
            )

        if config.image_features:
            backbone_model = make_resnet(
                config.vision_backbone,
                config.pretrained_backbone_weights,
                replace_stride_with_dilation=[False, False, bool(config.replace_final_stride_with_dilation)],
                norm_layer=FrozenBatchNorm2d,
            )
            # Returns {"feature_map": layer4 output}; keeps torchvision's names (model.backbone.layer1...).
            self.backbone = IntermediateLayerGetter(backbone_model, return_layers={"layer4": "feature_map"})

        self.encoder = ACTEncoder(config)
        self.decoder = ACTDecoder(config)

        # Encoder input tokens: [latent, (robot_state), (env_state), (image feature map pixels)].
        if config.robot_state_feature:
            self.encoder_robot_state_input_proj = nn.Linear(
                config.robot_state_feature.shape[0], config.dim_model
            )
        if config.env_state_feature:
            self.encoder_env_state_input_proj = nn.Linear(config.env_state_feature.shape[0], config.dim_model)
        self.encoder_latent_input_proj = nn.Linear(config.latent_dim, config.dim_model)
        if config.image_features:
            self.encoder_img_feat_input_proj = nn.Conv2d(
                backbone_model.fc.in_features, config.dim_model, kernel_size=1
            )
        n_1d_tokens = 1 + (1 if config.robot_state_feature else 0) + (1 if config.env_state_feature else 0)
        self.encoder_1d_feature_pos_embed = nn.Embedding(n_1d_tokens, config.dim_model)
        if config.image_features:
            self.encoder_cam_feat_pos_embed = ACTSinusoidalPositionEmbedding2d(config.dim_model // 2)

        # Learned positional embedding of the decoder's queries (DETR's object queries).
        self.decoder_pos_embed = nn.Embedding(config.chunk_size, config.dim_model)
        self.action_head = nn.Linear(config.dim_model, config.action_feature.shape[0])

        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Xavier-uniform initialisation of the transformer's matrices, as the original code."""
        for p in chain(self.encoder.parameters(), self.decoder.parameters()):
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor] | tuple[None, None]]:
        """``batch``: ``observation.state`` (B, state_dim) when configured, ``observation.images`` a list
        of (B, C, H, W) and/or ``observation.environment_state`` (B, env_dim), and for VAE training
        ``action`` (B, chunk, action_dim) with ``action_is_pad`` (B, chunk). Returns the actions
        (B, chunk, action_dim) and the latent's (mean, 2 log sigma), (None, None) without the VAE."""
        config = self.config
        if config.use_vae and self.training and ACTION not in batch:
            raise PolicyFeatureError(
                "ACT needs 'action' in the batch to train with the variational objective (use_vae)"
            )

        batch_size = batch[OBS_IMAGES][0].shape[0] if OBS_IMAGES in batch else batch[OBS_ENV_STATE].shape[0]
        device = batch[OBS_IMAGES][0].device if OBS_IMAGES in batch else batch[OBS_ENV_STATE].device

        if config.use_vae and ACTION in batch and self.training:
            cls_embed = self.vae_encoder_cls_embed.weight.unsqueeze(0).expand(batch_size, 1, config.dim_model)
            if config.robot_state_feature:
                robot_state_embed = self.vae_encoder_robot_state_input_proj(batch[OBS_STATE]).unsqueeze(1)
            action_embed = self.vae_encoder_action_input_proj(batch[ACTION])  # (B, S, D)
            if config.robot_state_feature:
                vae_encoder_input = torch.cat([cls_embed, robot_state_embed, action_embed], dim=1)
            else:
                vae_encoder_input = torch.cat([cls_embed, action_embed], dim=1)
            pos_embed = self.vae_encoder_pos_enc.clone().detach()  # (1, S+2, D)
            # CLS (and state) tokens are never padding; actions past the episode's end are.
            cls_joint_is_pad = torch.full(
                (batch_size, 2 if config.robot_state_feature else 1), False, device=device
            )
            key_padding_mask = torch.cat([cls_joint_is_pad, batch["action_is_pad"]], dim=1)
            cls_token_out = self.vae_encoder(
                vae_encoder_input.permute(1, 0, 2),
                pos_embed=pos_embed.permute(1, 0, 2),
                key_padding_mask=key_padding_mask,
            )[0]
            latent_pdf_params = self.vae_encoder_latent_output_proj(cls_token_out)
            mu = latent_pdf_params[:, : config.latent_dim]
            log_sigma_x2 = latent_pdf_params[:, config.latent_dim :]  # 2 log(sigma), as the original code
            latent_sample = mu + log_sigma_x2.div(2).exp() * torch.randn_like(mu)
        else:
            mu = log_sigma_x2 = None
            latent_sample = torch.zeros([batch_size, config.latent_dim], dtype=torch.float32, device=device)

        encoder_in_tokens = [self.encoder_latent_input_proj(latent_sample)]
        encoder_in_pos_embed = list(self.encoder_1d_feature_pos_embed.weight.unsqueeze(1))
        if config.robot_state_feature:
            encoder_in_tokens.append(self.encoder_robot_state_input_proj(batch[OBS_STATE]))
        if config.env_state_feature:
            encoder_in_tokens.append(self.encoder_env_state_input_proj(batch[OBS_ENV_STATE]))

        if config.image_features:
            for img in batch[OBS_IMAGES]:
                cam_features = self.backbone(img)["feature_map"]
                cam_pos_embed = self.encoder_cam_feat_pos_embed(cam_features).to(dtype=cam_features.dtype)
                cam_features = self.encoder_img_feat_input_proj(cam_features)
                # (B, C, H, W) -> (H*W, B, C): one token per feature-map pixel.
                cam_features = cam_features.flatten(2).permute(2, 0, 1)
                cam_pos_embed = cam_pos_embed.flatten(2).permute(2, 0, 1)
                encoder_in_tokens.extend(list(cam_features))
                encoder_in_pos_embed.extend(list(cam_pos_embed))

        encoder_in_tokens = torch.stack(encoder_in_tokens, dim=0)
        encoder_in_pos_embed = torch.stack(encoder_in_pos_embed, dim=0)

        encoder_out = self.encoder(encoder_in_tokens, pos_embed=encoder_in_pos_embed)
        decoder_in = torch.zeros(
            (config.chunk_size, batch_size, config.dim_model),
            dtype=encoder_in_pos_embed.dtype,
            device=encoder_in_pos_embed.device,
        )
        decoder_out = self.decoder(
            decoder_in,
            encoder_out,
            encoder_pos_embed=encoder_in_pos_embed,
            decoder_pos_embed=self.decoder_pos_embed.weight.unsqueeze(1),
        )
        decoder_out = decoder_out.transpose(0, 1)  # (B, S, D)
        actions = self.action_head(decoder_out)
        return actions, (mu, log_sigma_x2)


class ACTEncoder(nn.Module):
    """A stack of encoder layers (the transformer encoder, or the VAE encoder), then LayerNorm with
    pre-norm blocks."""

    def __init__(self, config: ACTConfig, is_vae_encoder: bool = False):
        super().__init__()
        self.is_vae_encoder = is_vae_encoder
        num_layers = config.n_vae_encoder_layers if is_vae_encoder else config.n_encoder_layers
        self.layers = nn.ModuleList([ACTEncoderLayer(config) for _ in range(num_layers)])
        self.norm = nn.LayerNorm(config.dim_model) if config.pre_norm else nn.Identity()

    def forward(
        self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        for layer in self.layers:
            x = layer(x, pos_embed=pos_embed, key_padding_mask=key_padding_mask)
        return self.norm(x)


class ACTEncoderLayer(nn.Module):
    """Self-attention (position embedding on queries and keys) and a feed-forward block, each with a
    residual connection and LayerNorm (after, or before with pre_norm)."""

    def __init__(self, config: ACTConfig):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(config.dim_model, config.n_heads, dropout=config.dropout)
        self.linear1 = nn.Linear(config.dim_model, config.dim_feedforward)
        self.dropout = nn.Dropout(config.dropout)
        self.linear2 = nn.Linear(config.dim_feedforward, config.dim_model)
        self.norm1 = nn.LayerNorm(config.dim_model)
        self.norm2 = nn.LayerNorm(config.dim_model)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.activation = get_activation_fn(config.feedforward_activation)
        self.pre_norm = config.pre_norm

    def forward(
        self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = x if pos_embed is None else x + pos_embed
        x = self.self_attn(q, k, value=x, key_padding_mask=key_padding_mask)[0]
        x = skip + self.dropout1(x)
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        x = skip + self.dropout2(x)
        if not self.pre_norm:
            x = self.norm2(x)
        return x


class ACTDecoder(nn.Module):
    """A stack of decoder layers followed by LayerNorm."""

    def __init__(self, config: ACTConfig):
        super().__init__()
        self.layers = nn.ModuleList([ACTDecoderLayer(config) for _ in range(config.n_decoder_layers)])
        self.norm = nn.LayerNorm(config.dim_model)

    def forward(
        self,
        x: Tensor,
        encoder_out: Tensor,
        decoder_pos_embed: Tensor | None = None,
        encoder_pos_embed: Tensor | None = None,
    ) -> Tensor:
        for layer in self.layers:
            x = layer(
                x, encoder_out, decoder_pos_embed=decoder_pos_embed, encoder_pos_embed=encoder_pos_embed
            )
        return self.norm(x)


class ACTDecoderLayer(nn.Module):
    """Self-attention over the queries, cross-attention to the encoder's output, feed-forward; each
    with a residual connection and LayerNorm."""

    def __init__(self, config: ACTConfig):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(config.dim_model, config.n_heads, dropout=config.dropout)
        self.multihead_attn = nn.MultiheadAttention(config.dim_model, config.n_heads, dropout=config.dropout)
        self.linear1 = nn.Linear(config.dim_model, config.dim_feedforward)
        self.dropout = nn.Dropout(config.dropout)
        self.linear2 = nn.Linear(config.dim_feedforward, config.dim_model)
        self.norm1 = nn.LayerNorm(config.dim_model)
        self.norm2 = nn.LayerNorm(config.dim_model)
        self.norm3 = nn.LayerNorm(config.dim_model)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.dropout3 = nn.Dropout(config.dropout)
        self.activation = get_activation_fn(config.feedforward_activation)
        self.pre_norm = config.pre_norm

    @staticmethod
    def maybe_add_pos_embed(tensor: Tensor, pos_embed: Tensor | None) -> Tensor:
        return tensor if pos_embed is None else tensor + pos_embed

    def forward(
        self,
        x: Tensor,
        encoder_out: Tensor,
        decoder_pos_embed: Tensor | None = None,
        encoder_pos_embed: Tensor | None = None,
    ) -> Tensor:
        """x (DS, B, C) queries, encoder_out (ES, B, C); position embeddings (DS or ES, 1, C)."""
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = self.maybe_add_pos_embed(x, decoder_pos_embed)
        x = self.self_attn(q, k, value=x)[0]
        x = skip + self.dropout1(x)
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = self.multihead_attn(
            query=self.maybe_add_pos_embed(x, decoder_pos_embed),
            key=self.maybe_add_pos_embed(encoder_out, encoder_pos_embed),
            value=encoder_out,
        )[0]
        x = skip + self.dropout2(x)
        if self.pre_norm:
            skip = x
            x = self.norm3(x)
        else:
            x = self.norm2(x)
            skip = x
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        x = skip + self.dropout3(x)
        if not self.pre_norm:
            x = self.norm3(x)
        return x


def create_sinusoidal_pos_embedding(num_positions: int, dimension: int) -> Tensor:
    """1-D sinusoidal position embeddings ("Attention Is All You Need"), ``(num_positions, dimension)``,
    computed in float64 with numpy as the original code, then cast to float32."""
    exponents = 2 * (np.arange(dimension) // 2) / dimension
    table = np.array([[pos / np.power(10000, e) for e in exponents] for pos in range(num_positions)])
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.from_numpy(table).float()


class ACTSinusoidalPositionEmbedding2d(nn.Module):
    """2-D sinusoidal position embeddings of a feature map: positions 1..H and 1..W scaled to (0, 2π],
    interleaved sin/cos per frequency, the y half then the x half of the channels."""

    def __init__(self, dimension: int):
        super().__init__()
        self.dimension = dimension
        self._two_pi = 2 * math.pi
        self._eps = 1e-6
        self._temperature = 10000

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> (1, 2 * dimension, H, W)."""
        not_mask = torch.ones_like(x[0, :1])  # (1, H, W)
        # 1-based positions, as the original code.
        y_range = not_mask.cumsum(1, dtype=torch.float32)
        x_range = not_mask.cumsum(2, dtype=torch.float32)
        y_range = y_range / (y_range[:, -1:, :] + self._eps) * self._two_pi
        x_range = x_range / (x_range[:, :, -1:] + self._eps) * self._two_pi
        inverse_frequency = self._temperature ** (
            2 * (torch.arange(self.dimension, dtype=torch.float32, device=x.device) // 2) / self.dimension
        )
        x_range = x_range.unsqueeze(-1) / inverse_frequency
        y_range = y_range.unsqueeze(-1) / inverse_frequency
        pos_embed_x = torch.stack((x_range[..., 0::2].sin(), x_range[..., 1::2].cos()), dim=-1).flatten(3)
        pos_embed_y = torch.stack((y_range[..., 0::2].sin(), y_range[..., 1::2].cos()), dim=-1).flatten(3)
        return torch.cat((pos_embed_y, pos_embed_x), dim=3).permute(0, 3, 1, 2)


def get_activation_fn(activation: str) -> Callable:
    """The activation function called ``activation`` ("relu", "gelu", "glu")."""
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    if activation == "glu":
        return F.glu
    raise PolicyConfigError(f"activation should be relu/gelu/glu, not {activation}.")
