"""``dexloop eval`` against LeRobot 0.6.1's ``lerobot-eval``: the same checkpoint and seeds give
LeRobot's per-episode rewards and successes on PushT and on a scripted env whose episodes end at
different steps (references made by tools/lerobot_reference/make_eval_reference.py; see
tests/eval/eval_reference_cases.py), eval_info.json in LeRobot's layout, videos, the so101_push
env, and typed errors for what cannot be evaluated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from eval_reference_cases import (
    CHECKPOINT,
    COUNTDOWN_BATCH,
    COUNTDOWN_EPISODES,
    COUNTDOWN_START_SEED,
    EVAL_ARGS,
    make_countdown_env,
)
from policies.act_reference_cases import backbone_tensor
from safetensors.torch import load_file, save_file

from dexloop.cli.eval import main as eval_cli
from dexloop.envs.configs import EnvConfig, PushtEnv, SO101PushEnvConfig, make_env, make_env_config
from dexloop.errors import EnvError, PolicyFeatureError, PolicyNotFoundError
from dexloop.eval import eval_main, eval_policy, parse_eval_config, preprocess_observation
from dexloop.eval.pipeline import observed_env_config
from dexloop.policies import PreTrainedPolicy, make_pre_post_processors
from dexloop.video import VideoDecoder

DATA = Path(__file__).resolve().parents[1] / "data" / "eval" / CHECKPOINT
RTOL = 1e-6
# PushT's coverage reward is shapely's polygon intersection area: its last bits (5e-8 seen on a reward
# of 0.02) differ between shapely builds, so small rewards are compared absolutely too.
REWARD_ATOL = 1e-6


@pytest.fixture(scope="module")
def pusht_checkpoint(tmp_path_factory) -> Path:
    """The stored LeRobot checkpoint with its backbone tensors put back."""
    target = tmp_path_factory.mktemp("eval_checkpoint") / CHECKPOINT
    shutil.copytree(DATA, target)
    for path in target.iterdir():
        path.chmod(0o644)
    meta = json.loads((DATA / "reference.json").read_text())
    weights = load_file(str(DATA / "model.safetensors"))
    for key, shape in meta["backbone_keys"].items():
        weights[key] = torch.from_numpy(backbone_tensor(key, tuple(shape)))
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def _layout(value):
    """The nested key structure of a JSON value (lists by their first element)."""
    if isinstance(value, dict):
        return {key: _layout(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_layout(value[0])] if value and isinstance(value[0], dict | list) else "list"
    return type(value).__name__ if not isinstance(value, int | float) or isinstance(value, bool) else "number"


def test_pusht_eval_gives_lerobots_episode_rewards(pusht_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    assert eval_cli([f"--policy.path={pusht_checkpoint}", *EVAL_ARGS, f"--output_dir={out}"]) == 0
    printed = capsys.readouterr().out
    assert "pc_success 0.0%" in printed and str(out / "eval_info.json") in printed

    ours = json.loads((out / "eval_info.json").read_text())
    reference = json.loads((DATA / "lerobot_eval_info.json").read_text())
    assert _layout(ours) == _layout(reference)
    got, want = ours["per_task"][0]["metrics"], reference["per_task"][0]["metrics"]
    assert ours["per_task"][0]["task_group"] == "pusht" and ours["per_task"][0]["task_id"] == 0
    np.testing.assert_allclose(got["sum_rewards"], want["sum_rewards"], rtol=RTOL, atol=REWARD_ATOL)
    np.testing.assert_allclose(got["max_rewards"], want["max_rewards"], rtol=RTOL, atol=REWARD_ATOL)
    assert got["successes"] == want["successes"]
    assert any(r > 0 for r in want["sum_rewards"])  # the rewards compared are not all zero
    for scope in ("overall",):
        for key in ("avg_sum_reward", "avg_max_reward", "pc_success", "n_episodes"):
            np.testing.assert_allclose(ours[scope][key], reference[scope][key], rtol=RTOL, atol=REWARD_ATOL)
    for key in ("avg_sum_reward", "avg_max_reward", "pc_success", "n_episodes"):
        np.testing.assert_allclose(
            ours["per_group"]["pusht"][key], reference["per_group"]["pusht"][key], rtol=RTOL, atol=REWARD_ATOL
        )

    # LeRobot renders every env of a batch while fewer than 10 episodes are rendered: 4 videos
    # for 3 episodes in batches of 2, the dropped fourth episode's included.
    videos = ours["overall"]["video_paths"]
    assert [Path(p).name for p in videos] == [Path(p).name for p in reference["overall"]["video_paths"]]
    assert all(Path(p).parent == out / "videos" / "pusht_0" for p in videos)
    info = VideoDecoder(str(videos[0])).info
    assert (info.width, info.height, info.codec) == (384, 384, "h264")
    # frames up to the episode's done index (39: truncated at the 40th step), the reset's first
    assert info.frame_count == 40
    assert not list((out / "videos" / "pusht_0").glob(".*partial*"))


def test_onnx_runtime_gives_lerobots_episode_rewards(pusht_checkpoint, tmp_path, capsys):
    """``--policy.runtime=onnx``: the checkpoint exported and run by ONNX Runtime rolls out the same
    episodes as LeRobot's torch policy (actions within 1e-6, so rewards within float noise)."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "eval_onnx"
    args = [f"--policy.path={pusht_checkpoint}", "--policy.runtime=onnx", *EVAL_ARGS, f"--output_dir={out}"]
    assert eval_cli(args) == 0
    assert (out / "onnx" / "dexloop_export.json").is_file()
    got = json.loads((out / "eval_info.json").read_text())["per_task"][0]["metrics"]
    want = json.loads((DATA / "lerobot_eval_info.json").read_text())["per_task"][0]["metrics"]
    np.testing.assert_allclose(got["sum_rewards"], want["sum_rewards"], rtol=1e-4, atol=1e-6)
    assert got["successes"] == want["successes"]
    capsys.readouterr()
    assert eval_cli([f"--policy.path={pusht_checkpoint}", "--policy.runtime=tflite", *EVAL_ARGS]) == 2
    assert "--policy.runtime=tflite" in capsys.readouterr().err
    assert (
        eval_cli(
            [
                f"--policy.path={pusht_checkpoint}",
                "--policy.runtime=onnx",
                "--policy.precision=int4",
                *EVAL_ARGS,
            ]
        )
        == 2
    )
    assert "--policy.precision=int4" in capsys.readouterr().err
    cfg = parse_eval_config(
        [
            f"--policy.path={pusht_checkpoint}",
            "--policy.runtime",
            "onnx",
            "--policy.precision=int8",
            *EVAL_ARGS,
        ]
    )
    assert (cfg.policy_runtime, cfg.policy_precision) == ("onnx", "int8")


def test_done_mask_and_autoreset_match_lerobot(pusht_checkpoint):
    """Episodes ending at different steps, some by success: sums run to one step past each
    episode's end (into the autoreset next episode), as LeRobot's mask does."""
    reference = json.loads((DATA / "lerobot_countdown.json").read_text())
    policy = PreTrainedPolicy.from_pretrained(pusht_checkpoint)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=pusht_checkpoint)
    env = gym.vector.SyncVectorEnv(
        [make_countdown_env] * COUNTDOWN_BATCH, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    with torch.no_grad():
        result = eval_policy(
            env, policy, pre, post, COUNTDOWN_EPISODES, start_seed=COUNTDOWN_START_SEED, progress=False
        )
    env.close()
    got, want = result["per_episode"], reference["per_episode"]
    assert [e["seed"] for e in got] == [e["seed"] for e in want] == list(range(7, 12))
    assert [e["success"] for e in got] == [e["success"] for e in want]
    assert len({e["success"] for e in want}) == 2  # both outcomes occur
    np.testing.assert_allclose([e["sum_reward"] for e in got], [e["sum_reward"] for e in want], rtol=RTOL)
    np.testing.assert_allclose([e["max_reward"] for e in got], [e["max_reward"] for e in want], rtol=RTOL)
    for key in ("avg_sum_reward", "avg_max_reward", "pc_success"):
        np.testing.assert_allclose(result["aggregated"][key], reference["aggregated"][key], rtol=RTOL)


def _tiny_so101_act(folder: Path) -> Path:
    from dexloop.policies.act import ACTConfig, ACTPolicy
    from dexloop.policies.types import FeatureType, PolicyFeature

    env_cfg = SO101PushEnvConfig()
    h, w = env_cfg.observation_height, env_cfg.observation_width
    inputs = {
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(6,)),
        "observation.images.top": PolicyFeature(type=FeatureType.VISUAL, shape=(3, h, w)),
        "observation.images.wrist": PolicyFeature(type=FeatureType.VISUAL, shape=(3, h, w)),
    }
    config = ACTConfig(
        input_features=inputs,
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(6,))},
        chunk_size=4,
        n_action_steps=4,
        dim_model=16,
        n_heads=2,
        dim_feedforward=32,
        n_encoder_layers=1,
        n_decoder_layers=1,
        use_vae=False,
        pretrained_backbone_weights=None,
        device="cpu",
    )
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    stats = {
        "observation.state": {"mean": np.zeros(6, np.float32), "std": np.full(6, 30.0, np.float32)},
        "observation.images.top": {
            "mean": np.full((3, 1, 1), 0.5, np.float32),
            "std": np.full((3, 1, 1), 0.2, np.float32),
        },
        "observation.images.wrist": {
            "mean": np.full((3, 1, 1), 0.5, np.float32),
            "std": np.full((3, 1, 1), 0.2, np.float32),
        },
        "action": {"mean": np.zeros(6, np.float32), "std": np.full(6, 20.0, np.float32)},
    }
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    policy.save_pretrained(folder)
    pre.save_pretrained(folder)
    post.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def so101_checkpoint(tmp_path_factory) -> Path:
    return _tiny_so101_act(tmp_path_factory.mktemp("so101_act") / "pretrained_model")


def test_so101_push_eval_writes_eval_info_and_videos(so101_checkpoint, tmp_path):
    out = tmp_path / "eval_so101"
    args = [
        f"--policy.path={so101_checkpoint}",
        "--env.type=so101_push",
        "--env.episode_length=6",
        "--eval.n_episodes=2",
        "--eval.batch_size=2",
        "--eval.use_async_envs=false",
        f"--output_dir={out}",
    ]
    assert eval_cli(args) == 0
    info = json.loads((out / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 2
    metrics = info["per_task"][0]["metrics"]
    assert info["per_task"][0]["task_group"] == "so101_push"
    assert len(metrics["sum_rewards"]) == 2 and all(np.isfinite(metrics["sum_rewards"]))
    assert all(0.0 <= m <= 1.0 for m in metrics["max_rewards"])  # so101_push rewards lie in [0, 1]
    assert 0.0 <= info["overall"]["pc_success"] <= 100.0
    videos = info["overall"]["video_paths"]
    assert [Path(p).name for p in videos] == ["eval_episode_0.mp4", "eval_episode_1.mp4"]
    info = VideoDecoder(str(videos[1])).info
    assert (info.width, info.height, info.frame_count) == (320, 240, 6)


def test_so101_push_config_describes_the_env():
    cfg = make_env_config("so101_push")
    envs = make_env(cfg, n_envs=1)
    vec = envs["so101_push"][0]
    try:
        assert isinstance(vec, gym.vector.SyncVectorEnv)
        assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
        assert observed_env_config(cfg, vec).features == cfg.features
        assert vec.call("_max_episode_steps")[0] == cfg.episode_length
    finally:
        vec.close()
    assert set(cfg.features) == {"action", "agent_pos", "pixels/top", "pixels/wrist"}
    assert cfg.features_map["pixels/wrist"] == "observation.images.wrist"


def test_pusht_config_is_lerobots():
    cfg = PushtEnv()
    assert (cfg.task, cfg.fps, cfg.episode_length, cfg.obs_type) == ("PushT-v0", 10, 300, "pixels_agent_pos")
    assert {k: (v.type.value, tuple(v.shape)) for k, v in cfg.features.items()} == {
        "action": ("ACTION", (2,)),
        "agent_pos": ("STATE", (2,)),
        "pixels": ("VISUAL", (384, 384, 3)),
    }
    assert cfg.features_map == {
        "action": "action",
        "agent_pos": "observation.state",
        "environment_state": "observation.environment_state",
        "pixels": "observation.image",
    }
    assert cfg.gym_id == "gym_pusht/PushT-v0"
    assert cfg.gym_kwargs == {
        "obs_type": "pixels_agent_pos",
        "render_mode": "rgb_array",
        "visualization_width": 384,
        "visualization_height": 384,
        "max_episode_steps": 300,
    }
    state_cfg = PushtEnv(obs_type="environment_state_agent_pos")
    assert "pixels" not in state_cfg.features and tuple(state_cfg.features["environment_state"].shape) == (
        16,
    )
    assert sorted(EnvConfig.get_known_choices()) == ["pusht", "so101_push"]


def test_preprocess_observation_is_lerobots():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    out = preprocess_observation(
        {
            "pixels": image,
            "agent_pos": np.array([[1.5, 2.0], [3.0, 4.0]]),
            "environment_state": np.ones((2, 3)),
        }
    )
    assert set(out) == {"observation.image", "observation.state", "observation.environment_state"}
    assert out["observation.image"].shape == (2, 3, 4, 5) and out["observation.image"].dtype == torch.float32
    assert torch.equal(
        out["observation.image"][1, 2, 3, 4], torch.tensor(image[1, 3, 4, 2] / 255, dtype=torch.float32)
    )
    assert out["observation.state"].dtype == torch.float32 and out["observation.state"][1, 0] == 3.0
    cams = preprocess_observation(
        {"pixels": {"top": image[0], "wrist": image[1]}, "agent_pos": np.zeros(6), "extra": np.ones(2)}
    )
    assert set(cams) == {
        "observation.images.top",
        "observation.images.wrist",
        "observation.state",
        "observation.extra",
    }
    assert cams["observation.images.top"].shape == (1, 3, 4, 5) and cams["observation.state"].shape == (1, 6)
    with pytest.raises(EnvError, match="uint8"):
        preprocess_observation({"pixels": image.astype(np.float32)})
    with pytest.raises(EnvError, match="channels-last"):
        preprocess_observation({"pixels": np.zeros((1, 3, 8, 8), np.uint8)})


def test_unknown_env_type_is_a_typed_error(pusht_checkpoint, capsys):
    with pytest.raises(EnvError, match=r"'mujoco_cartpole' is not registered.*pusht.*so101_push"):
        parse_eval_config([f"--policy.path={pusht_checkpoint}", "--env.type=mujoco_cartpole"])
    with pytest.raises(EnvError, match="not registered"):
        make_env_config("aloha")
    with pytest.raises(EnvError, match="--env.type"):
        parse_eval_config([f"--policy.path={pusht_checkpoint}"])
    assert eval_cli([f"--policy.path={pusht_checkpoint}", "--env.type=nope"]) == 2
    assert "'nope' is not registered" in capsys.readouterr().err
    with pytest.raises(PolicyNotFoundError):
        parse_eval_config(["--policy.path=/nonexistent/checkpoint", "--env.type=pusht"])


def test_policy_needing_what_the_env_lacks_is_refused(pusht_checkpoint, so101_checkpoint, tmp_path, capsys):
    # A PushT policy in so101_push: no observation.image there.
    cfg = parse_eval_config(
        [
            f"--policy.path={pusht_checkpoint}",
            "--env.type=so101_push",
            "--env.obs_type=agent_pos",
            "--eval.n_episodes=1",
            f"--output_dir={tmp_path / 'a'}",
        ]
    )
    with pytest.raises(PolicyFeatureError, match=r"observation\.image.*so101_push"):
        eval_main(cfg, progress=False)
    assert not (tmp_path / "a" / "eval_info.json").exists()
    # A six-joint policy in PushT: observation.state has 2 entries there, not 6.
    args = [
        f"--policy.path={so101_checkpoint}",
        "--env.type=pusht",
        "--eval.n_episodes=1",
        f"--output_dir={tmp_path / 'b'}",
    ]
    assert eval_cli(args) == 1
    err = capsys.readouterr().err
    assert "observation.images.top" in err or "observation.state" in err


def test_async_envs_give_the_sync_results(pusht_checkpoint, tmp_path):
    """Worker-process envs (forkserver) run the same episodes; PushT has no task text, which must
    not shut a worker down."""
    results = {}
    for use_async in ("false", "true"):
        out = tmp_path / use_async
        args = [
            f"--policy.path={pusht_checkpoint}",
            "--env.type=pusht",
            "--env.episode_length=6",
            "--eval.n_episodes=2",
            "--eval.batch_size=2",
            f"--eval.use_async_envs={use_async}",
            f"--output_dir={out}",
        ]
        cfg = parse_eval_config(args)
        info = eval_main(cfg, progress=False)
        results[use_async] = info["per_task"][0]["metrics"]
    assert results["true"]["sum_rewards"] == results["false"]["sum_rewards"]
    assert results["true"]["max_rewards"] == results["false"]["max_rewards"]
    assert len(results["true"]["video_paths"]) == 2


def test_help_lists_lerobots_flags_with_defaults(capsys):
    assert eval_cli(["--help", "--env.type=so101_push"]) == 0
    text = capsys.readouterr().out
    episode_length = f"--env.episode_length=int [{SO101PushEnvConfig().episode_length}]"
    for flag in ("--eval.n_episodes=int [50]", "--seed=int | None [1000]", episode_length):
        assert flag in text
    assert "--policy.path=CHECKPOINT" in text and "--rename_map" in text
