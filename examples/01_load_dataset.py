"""Load a LeRobot dataset with dexloop and look at one item and one batch.

python examples/01_load_dataset.py                      # the LeRobot-recorded dataset shipped with the tests
python examples/01_load_dataset.py --root PATH          # any local LeRobot v3.0 / v2.1 dataset
python examples/01_load_dataset.py --repo-id lerobot/pusht   # downloaded from the Hugging Face Hub
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dexloop.datasets import LeRobotDataset

SHIPPED = Path(__file__).resolve().parent.parent / "tests" / "data" / "lerobot" / "public_0"


def describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.'):8s} {tuple(value.shape)}"
    return repr(value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repo-id",
        default=None,
        help="dataset id (default: dexloop/public_0, or local/<folder name> with --root)",
    )
    parser.add_argument(
        "--root", type=Path, default=None, help="local dataset folder (default: the shipped one)"
    )
    parser.add_argument("--index", type=int, default=50, help="item to print (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="DataLoader batch (default: %(default)s)")
    args = parser.parse_args()
    if args.repo_id is None:
        args.repo_id = f"local/{args.root.resolve().name}" if args.root is not None else "dexloop/public_0"
    root = args.root if args.root is not None or args.repo_id != "dexloop/public_0" else SHIPPED

    # An ACT-style query: the current state and camera frame, and the next 8 actions.
    probe = LeRobotDataset(args.repo_id, root=root)
    fps = probe.fps
    dataset = LeRobotDataset(
        args.repo_id,
        root=root,
        delta_timestamps={"action": [k / fps for k in range(8)]},
        return_uint8=True,
    )
    print(dataset)
    print(f"fps {fps}, cameras {dataset.meta.camera_keys}, tasks {list(dataset.meta.tasks.index)}")
    item = dataset[args.index % len(dataset)]
    print(f"\nitem {args.index % len(dataset)}:")
    for key, value in item.items():
        print(f"  {key:32s} {describe(value)}")

    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True)
    start = time.perf_counter()
    batch = next(iter(loader))
    elapsed = time.perf_counter() - start
    print(f"\none shuffled batch of {args.batch_size} in {elapsed * 1000:.1f} ms:")
    for key, value in batch.items():
        print(
            f"  {key:32s} {describe(value) if isinstance(value, torch.Tensor) else f'list of {len(value)}'}"
        )


if __name__ == "__main__":
    main()
