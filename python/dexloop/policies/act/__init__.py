"""ACT (Action Chunking Transformer), checkpoint-compatible with LeRobot 0.6.1."""

from dexloop.policies.act.configuration_act import ACTConfig
from dexloop.policies.act.modeling_act import ACTPolicy, ACTTemporalEnsembler
from dexloop.policies.act.processor_act import make_act_pre_post_processors

__all__ = ["ACTConfig", "ACTPolicy", "ACTTemporalEnsembler", "make_act_pre_post_processors"]
