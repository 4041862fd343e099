#!/usr/bin/env python
"""LeRobot 0.6.1's ``lerobot-train``, run with LeRobot's dataset classes or dexloop's, recording the losses.

    python lerobot_train_on_dexloop.py --readers dexloop --losses-out dexloop.json -- <lerobot-train flags>
    python lerobot_train_on_dexloop.py --readers lerobot --losses-out lerobot.json -- <lerobot-train flags>

With ``--readers dexloop`` the dataset classes are swapped for dexloop's (swap_lerobot_readers.py);
nothing else of LeRobot changes. Each optimisation step's loss (``train_metrics.loss``, the exact float
LeRobot logs rounded) is written to ``--losses-out`` as JSON. Run by hand in a LeRobot environment with
dexloop installed (see lerobot_dataset_tests_on_dexloop.py); the same flags with both readers must give the same
losses. Example (CPU, a dataset of tests/data written by LeRobot):

    python tools/lerobot_reference/lerobot_train_on_dexloop.py --readers dexloop --losses-out /tmp/d.json -- \\
        --dataset.repo_id=dexloop/two_cams_fps10 --dataset.root=tests/data/lerobot/two_cams_fps10 \\
        --policy.type=act --policy.pretrained_backbone_weights=null --policy.device=cpu \\
        --policy.push_to_hub=false --policy.chunk_size=5 --policy.n_action_steps=5 --policy.dim_model=64 \\
        --policy.dim_feedforward=128 --policy.n_heads=2 --policy.n_encoder_layers=1 \\
        --policy.n_decoder_layers=1 --policy.latent_dim=8 --batch_size=4 --steps=8 --log_freq=1 \\
        --seed=1000 --num_workers=0 --save_checkpoint=false --env_eval_freq=0 --output_dir=/tmp/train-d

(add ``--dataset.episodes=[0,2,3]`` for an episode subset). Both readers gave the same 8 losses, bit for
bit, on 2026-12-01 (LeRobot 0.6.1, torch 2.11 CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", choices=["dexloop", "lerobot"], required=True)
    parser.add_argument("--losses-out", type=Path, required=True)
    args, train_flags = parser.parse_known_args()
    train_flags = [flag for flag in train_flags if flag != "--"]

    if args.readers == "dexloop":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import swap_lerobot_readers

    import lerobot.scripts.lerobot_train as lerobot_train

    if args.readers == "dexloop":
        swap_lerobot_readers.swap()
    losses: list[float] = []
    update_policy = lerobot_train.update_policy

    def recording_update_policy(train_metrics, *rest, **kwargs):
        train_metrics, output = update_policy(train_metrics, *rest, **kwargs)
        losses.append(
            train_metrics.loss.val if hasattr(train_metrics.loss, "val") else float(train_metrics.loss)
        )
        return train_metrics, output

    lerobot_train.update_policy = recording_update_policy
    sys.argv = [sys.argv[0], *train_flags]
    lerobot_train.train()
    dataset_class = lerobot_train.make_train_eval_datasets.__globals__["LeRobotDataset"]
    args.losses_out.write_text(
        json.dumps(
            {
                "readers": args.readers,
                "dataset_class": f"{dataset_class.__module__}.{dataset_class.__qualname__}",
                "losses": losses,
            },
            indent=1,
        )
    )
    print(f"{args.readers}: {len(losses)} losses -> {args.losses_out}: {losses}")


if __name__ == "__main__":
    main()
