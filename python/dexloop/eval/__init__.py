"""Evaluation: roll a policy out in a simulated environment and score it, as LeRobot's ``lerobot-eval``.

    from dexloop.eval import parse_eval_config, eval_main
    info = eval_main(parse_eval_config(["--policy.path=ckpt", "--env.type=pusht", "--eval.n_episodes=10"]))
    info["overall"]["pc_success"], info["overall"]["avg_sum_reward"]

:mod:`dexloop.eval.rollout` has the rollout and scoring (``rollout``, ``eval_policy``,
``eval_policy_all``, ``preprocess_observation``); :mod:`dexloop.eval.pipeline` the command's
configuration (``EvalPipelineConfig``) and run (``eval_main``). Environments and their configs are
in :mod:`dexloop.envs.configs`.
"""

from dexloop.eval.pipeline import EVAL_INFO_NAME, EvalPipelineConfig, eval_main, parse_eval_config
from dexloop.eval.rollout import eval_policy, eval_policy_all, preprocess_observation, rollout, write_video

__all__ = [
    "EVAL_INFO_NAME",
    "EvalPipelineConfig",
    "eval_main",
    "eval_policy",
    "eval_policy_all",
    "parse_eval_config",
    "preprocess_observation",
    "rollout",
    "write_video",
]
