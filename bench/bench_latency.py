"""Action latency of exported policies against LeRobot 0.6.1's own torch-eager path, same checkpoint,
same run.

Two checkpoints are made (random weights, seeded; dataset-like statistics):

* ACT at LeRobot's default size (ResNet-18, dim_model 512, 4 encoder / 1 decoder layers, chunk_size
  100) with one 480x640 camera and a 6-D state, as the acceptance names it;
* Diffusion Policy at LeRobot's defaults (ResNet-18 + spatial softmax, U-Net 512/1024/2048, horizon
  16, n_obs_steps 2, 84x84 crops of a 96x96 camera) sampling with DDIM in 10 steps.

For each, ``dexloop.inference.latency`` times the action-chunk call from uint8 camera frames and the
state vector, per stage, every variant in its own process: ``lerobot`` (LeRobot's policy and
processor classes: pre-processor, ``predict_action_chunk``, post-processor; the baseline, when LeRobot
is importable), ``torch`` (dexloop's policy, the same path), ``ort-fp32`` and ``ort-int8`` (the
export run by ONNX Runtime on the CPU; int8 is static QDQ quantisation calibrated on seeded inputs),
and ``torch-compile`` with ``--compile``. Ratios are call p50 against the baseline.

    python bench/bench_latency.py                       # writes bench/results/bench_latency_{act,diffusion}.*
    python bench/bench_latency.py --quick               # 30 calls, bench/out/ only
    /tmp/lerobot-peer/bin/python bench/bench_latency.py # with LeRobot's path as the baseline

Run it with an interpreter that has LeRobot 0.6.1 and dexloop (``pip install --no-build-isolation
--no-deps -e .`` into LeRobot's environment) to get the comparison; elsewhere dexloop's torch path is
the baseline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from dexloop.inference import latency  # noqa: E402
from dexloop.policies import make_pre_post_processors  # noqa: E402
from dexloop.policies.types import FeatureType, PolicyFeature  # noqa: E402

from host import host_metadata  # noqa: E402

STATE_DIM = ACTION_DIM = 6


def _stats(image_keys: list[str]) -> dict[str, dict[str, np.ndarray]]:
    vector = {
        "mean": np.zeros(STATE_DIM, np.float32),
        "std": np.full(STATE_DIM, 30.0, np.float32),
        "min": np.full(STATE_DIM, -90.0, np.float32),
        "max": np.full(STATE_DIM, 90.0, np.float32),
    }
    image = {
        "mean": np.full((3, 1, 1), 0.45, np.float32),
        "std": np.full((3, 1, 1), 0.22, np.float32),
        "min": np.zeros((3, 1, 1), np.float32),
        "max": np.ones((3, 1, 1), np.float32),
    }
    return {"observation.state": vector, "action": vector, **{key: image for key in image_keys}}


def make_checkpoint(kind: str, folder: Path) -> Path:
    """A seeded, randomly initialised checkpoint of LeRobot's default ``kind`` policy in ``folder``."""
    if (folder / "model.safetensors").is_file():
        return folder
    torch.manual_seed(0)
    state = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))}
    action = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    if kind == "act":
        from dexloop.policies.act import ACTConfig, ACTPolicy

        camera = {"observation.images.front": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 480, 640))}
        config = ACTConfig(
            input_features={**camera, **state},
            output_features=action,
            pretrained_backbone_weights=None,
            device="cpu",
        )
        policy = ACTPolicy(config)
    else:
        from dexloop.policies.diffusion import DiffusionConfig, DiffusionPolicy

        camera = {"observation.images.front": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 96, 96))}
        config = DiffusionConfig(
            input_features={**camera, **state},
            output_features=action,
            noise_scheduler_type="DDIM",
            pretrained_backbone_weights=None,
            num_inference_steps=10,
            device="cpu",
        )
        policy = DiffusionPolicy(config)
    pre, post = make_pre_post_processors(config, dataset_stats=_stats(list(camera)))
    policy.save_pretrained(folder)
    pre.save_pretrained(folder)
    post.save_pretrained(folder)
    return folder


def lerobot_available() -> bool:
    try:
        import lerobot  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default="act,diffusion")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-sizes", default="1")
    parser.add_argument("--variants", default="torch,ort-fp32,ort-int8", help="besides LeRobot's baseline")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--quick", action="store_true", help="30 calls; results in bench/out/ only")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "latency")
    args = parser.parse_args()
    calls = 30 if args.quick else args.calls
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    results_dir = args.workdir if args.quick else REPO / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    baseline = "lerobot" if lerobot_available() else "torch"

    for kind in args.policies.split(","):
        checkpoint = make_checkpoint(kind, args.workdir / f"{kind}_checkpoint")
        variants = ([baseline] if baseline == "lerobot" else []) + args.variants.split(",")
        if args.compile:
            variants.append("torch-compile")
        out = args.workdir / f"{kind}_runs"
        report = latency.run(
            checkpoint, variants, batch_sizes, out, calls=calls, warmup=args.warmup, baseline=baseline
        )
        report["host"] = host_metadata()
        report["torch"] = torch.__version__
        try:
            import onnxruntime

            report["onnxruntime"] = onnxruntime.__version__
        except ImportError:
            pass
        print(f"\n{kind} ({'LeRobot 0.6.1' if baseline == 'lerobot' else 'dexloop torch'} is the baseline):")
        print(latency.format_table(report))
        name = f"bench_latency_{kind}"
        (results_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        if report.get("plot"):
            shutil.copy(report["plot"], results_dir / f"{name}.png")
        print(f"results: {results_dir / name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
