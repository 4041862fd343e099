#!/usr/bin/env python
"""Record small reference datasets with real LeRobot 0.6.1 and dump what its loader returns.

Run by hand (it needs LeRobot, the tests do not):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_reference.py --out tests/data/lerobot
    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_reference.py --out tests/data/lerobot --verify

The first command (re)creates ``<out>/<dataset>/`` (a LeRobot v3.0 dataset written through
``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize``, and ``resume`` for the
multi-session one) and ``<out>/expected/<dataset>__<query>.npz|json``: the items
``LeRobotDataset(repo_id, root=..., delta_timestamps=..., episodes=..., return_uint8=True)[i]``
returned, in the format of ``shared/fixtures/lerobot-v3/expected``. ``--verify`` reloads every dataset
with LeRobot and checks that the shipped npz/json equal what LeRobot returns now, and that decoded
frames are the painted ones.

Only LeRobot's public API is called here; nothing of LeRobot is copied into dexloop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Python's str hash is randomised per process, and LeRobot orders an episode's task list (and the
# task_index of several new tasks in one episode) through a set. Pin it so reruns give the same files.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_CACHE = tempfile.mkdtemp(prefix="dexloop-lerobot-ref-cache-")
os.environ.setdefault("HF_DATASETS_CACHE", _CACHE)
os.environ.setdefault("HF_LEROBOT_HOME", os.path.join(_CACHE, "lerobot-home"))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "datasets"))

from reference_recordings import (  # noqa: E402
    DATASETS,
    EXTRA_KEYS,
    build_features,
    episode_values,
    paint_frame,
    video_cameras,
)
from reference_recordings import record as record_sessions  # noqa: E402


# ----------------------------------------------------------------------------------------------
# Recording
# ----------------------------------------------------------------------------------------------
def record(name: str, spec: dict, root: Path, log: list[str]) -> dict:
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    repo_id = f"dexloop/{name}"
    features = build_features(spec)
    notes: dict = {"refused_features": {}}

    # Probe each extra feature on its own so that one LeRobot refuses is dropped (and reported)
    # instead of failing the whole dataset.
    probe_root = root.parent / f"{name}-probe"
    for key in [k for k in features if k in EXTRA_KEYS]:
        shutil.rmtree(probe_root, ignore_errors=True)
        try:
            probe = LeRobotDataset.create(
                repo_id=repo_id + "-probe",
                fps=spec["fps"],
                features={key: features[key]},
                root=probe_root,
                use_videos=True,
            )
            # the dataset's own episode-length pattern, shortened (keeps a one-frame episode)
            probe_lengths = [min(n, 2) for n in spec["lengths"]]
            for ep, n in enumerate(probe_lengths):
                vals = episode_values(spec["seed"], ep, n)
                for i in range(n):
                    probe.add_frame({key: vals[key][i], "task": "probe"})
                probe.save_episode()
            probe.finalize()
            _ = LeRobotDataset(repo_id + "-probe", root=probe_root)[len(probe_lengths) - 1]
        except Exception as exc:  # LeRobot refused this feature: record why and drop it
            notes["refused_features"][key] = f"{type(exc).__name__}: {exc}".strip()[:500]
            log.append(f"{name}: LeRobot refused feature {key}: {notes['refused_features'][key]}")
            del features[key]
        shutil.rmtree(probe_root, ignore_errors=True)

    encoder = RGBEncoderConfig(**spec["encoder"]) if "encoder" in spec else None
    record_sessions(LeRobotDataset, name, root, features, encoder)
    return notes


# ----------------------------------------------------------------------------------------------
# Querying
# ----------------------------------------------------------------------------------------------
def episode_bounds(lengths: list[int]) -> list[tuple[int, int]]:
    out, s = [], 0
    for n in lengths:
        out.append((s, s + n))
        s += n
    return out


def pick_indices(lengths: list[int], episodes: list[int] | None, extra_global: list[int]) -> list[int]:
    """Positions (relative to the selected episodes) of episode starts, ends, middles and extras."""
    eps = list(range(len(lengths))) if episodes is None else episodes
    picked: set[int] = set()
    pos = 0
    bounds = episode_bounds(lengths)
    for ep in eps:
        n = lengths[ep]
        picked.update({pos, pos + n - 1})
        if n >= 5:
            picked.add(pos + n // 2)
        gs = bounds[ep][0]
        for g in extra_global:
            if gs <= g < gs + n:
                picked.add(pos + g - gs)
        pos += n
    return sorted(picked)


def window_deltas(spec: dict) -> dict[str, list[float]]:
    fps = spec["fps"]
    d = {
        "observation.state": [k / fps for k in (-3, -1, 0)],
        "action": [k / fps for k in range(8)],
    }
    for cam in spec["cameras"]:
        d[cam] = [k / fps for k in (-2, 0)]
    return d


def queries(spec: dict) -> dict[str, tuple[dict | None, list[int] | None]]:
    fps = spec["fps"]
    q: dict[str, tuple[dict | None, list[int] | None]] = {
        "plain": (None, None),
        "window": (window_deltas(spec), None),
        "subset": (window_deltas(spec), spec["subset"]),
    }
    for qname, frames in spec["extra_queries"].items():
        q[qname] = ({k: [f / fps for f in v] for k, v in frames.items()}, None)
    return q


def dump_items(ds, indices: list[int]) -> tuple[dict, dict]:
    import torch

    arrays: dict[str, np.ndarray] = {}
    items: dict[str, dict] = {}
    for idx in indices:
        item = ds[idx]
        desc: dict = {}
        for key, val in item.items():
            if isinstance(val, torch.Tensor):
                arr = val.numpy()
                arrays[f"{idx}/{key}"] = arr
                desc[key] = {"dtype": str(arr.dtype), "shape": list(arr.shape)}
            else:
                desc[key] = {"value": val}
        items[str(idx)] = desc
    return arrays, items


def load(name: str, root: Path, delta_timestamps, episodes):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(
        f"dexloop/{name}", root=root, delta_timestamps=delta_timestamps, episodes=episodes, return_uint8=True
    )


def file_boundaries(root: Path, spec: dict) -> list[int]:
    """Global indices of first/last frames of each data file and each camera video file."""
    import pyarrow.parquet as pq

    eps = pq.read_table(sorted((root / "meta" / "episodes").glob("*/*.parquet"))).to_pylist()
    out: set[int] = set()
    cols = ["data/file_index"] + [f"videos/{c}/file_index" for c in video_cameras(spec)]
    for col in cols:
        prev = None
        for e in eps:
            key = (e[col.replace("file_index", "chunk_index")], e[col])
            if key != prev:
                out.add(e["dataset_from_index"])
                if prev is not None:
                    out.add(e["dataset_from_index"] - 1)
            prev = key
    return sorted(out)


def describe_layout(root: Path, spec: dict) -> list[dict]:
    import pyarrow.parquet as pq

    eps = pq.read_table(sorted((root / "meta" / "episodes").glob("*/*.parquet"))).to_pylist()
    rows = []
    for e in eps:
        r = {
            "episode": e["episode_index"],
            "length": e["length"],
            "tasks": e["tasks"],
            "rows": [e["dataset_from_index"], e["dataset_to_index"]],
            "data": f"{e['data/chunk_index']:03d}/{e['data/file_index']:03d}",
            "meta": f"{e['meta/episodes/chunk_index']:03d}/{e['meta/episodes/file_index']:03d}",
        }
        for c in video_cameras(spec):
            r[c] = {
                "file": f"{e[f'videos/{c}/chunk_index']:03d}/{e[f'videos/{c}/file_index']:03d}",
                "from": e[f"videos/{c}/from_timestamp"],
                "to": e[f"videos/{c}/to_timestamp"],
            }
        rows.append(r)
    return rows


def make(out: Path, only: list[str] | None) -> None:
    import lerobot

    out.mkdir(parents=True, exist_ok=True)
    (out / "expected").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dexloop-lerobot-ref-"))
    log: list[str] = []
    summary: dict = {}
    for name, spec in DATASETS.items():
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        root = work / name
        notes = record(name, spec, root, log)
        dest = out / name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(root, dest, ignore=shutil.ignore_patterns("images"))
        for old in (out / "expected").glob(f"{name}__*"):
            old.unlink()

        boundaries = file_boundaries(dest, spec)
        for qname, (deltas, episodes) in queries(spec).items():
            ds = load(name, dest, deltas, episodes)
            indices = pick_indices(spec["lengths"], episodes, boundaries + spec.get("extra_indices", []))
            assert all(0 <= i < len(ds) for i in indices), (name, qname, indices, len(ds))
            assert len(indices) <= 15, (name, qname, indices)
            arrays, items = dump_items(ds, indices)
            doc = {
                "dataset": name,
                "query": qname,
                "delta_timestamps": deltas,
                "episodes": episodes,
                "return_uint8": True,
                "len": len(ds),
                "items": items,
            }
            np.savez_compressed(out / "expected" / f"{name}__{qname}.npz", **arrays)
            (out / "expected" / f"{name}__{qname}.json").write_text(json.dumps(doc, indent=1) + "\n")
            print(f"   {qname}: len={len(ds)} indices={indices}", flush=True)
        summary[name] = {"notes": notes, "layout": describe_layout(dest, spec), "file_boundaries": boundaries}
        shutil.rmtree(root, ignore_errors=True)

    import torchcodec

    summary["_versions"] = {"lerobot": lerobot.__version__, "torchcodec": torchcodec.__version__}
    print(json.dumps(summary, indent=1))
    for line in log:
        print(line)
    shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# Verification (not a test: needs LeRobot)
# ----------------------------------------------------------------------------------------------
def verify(out: Path, only: list[str] | None) -> int:
    import torch

    failures = 0
    for name, spec in DATASETS.items():
        if only and name not in only:
            continue
        dest = out / name
        for jpath in sorted((out / "expected").glob(f"{name}__*.json")):
            doc = json.loads(jpath.read_text())
            shipped = np.load(jpath.with_suffix(".npz"))
            ds = load(name, dest, doc["delta_timestamps"], doc["episodes"])
            problems: list[str] = []
            if len(ds) != doc["len"]:
                problems.append(f"len {len(ds)} != {doc['len']}")
            used = set()
            for sidx, desc in doc["items"].items():
                item = ds[int(sidx)]
                if list(item.keys()) != list(desc.keys()):
                    problems.append(f"{sidx}: key order {list(item.keys())} != {list(desc.keys())}")
                for key, d in desc.items():
                    val = item[key]
                    if "value" in d:
                        if val != d["value"]:
                            problems.append(f"{sidx}/{key}: {val!r} != {d['value']!r}")
                        continue
                    arr = shipped[f"{sidx}/{key}"]
                    used.add(f"{sidx}/{key}")
                    got = val.numpy() if isinstance(val, torch.Tensor) else np.asarray(val)
                    if str(arr.dtype) != d["dtype"] or list(arr.shape) != d["shape"]:
                        problems.append(f"{sidx}/{key}: npz {arr.dtype}{arr.shape} vs json {d}")
                    if got.dtype != arr.dtype or got.shape != arr.shape or not np.array_equal(got, arr):
                        problems.append(f"{sidx}/{key}: LeRobot now returns a different array")
                # decoded frames must be the painted ones (not a neighbour)
                ep = int(item["episode_index"])
                fr = int(item["frame_index"])
                for cam, (h, w) in video_cameras(spec).items():
                    if doc["delta_timestamps"] and cam in doc["delta_timestamps"]:
                        ks = [round(t * spec["fps"]) for t in doc["delta_timestamps"][cam]]
                        frames = item[cam].numpy().reshape(len(ks), 3, h, w)
                    else:
                        ks, frames = [0], item[cam].numpy()[None]
                    n = spec["lengths"][ep]
                    for k, img in zip(ks, frames, strict=True):
                        want = min(max(fr + k, 0), n - 1)
                        errs = [
                            np.abs(
                                img.astype(int) - paint_frame(ep, c, h, w).transpose(2, 0, 1).astype(int)
                            ).mean()
                            for c in range(n)
                        ]
                        if int(np.argmin(errs)) != want or errs[want] > 30:
                            problems.append(
                                f"{sidx}/{cam}[{k}]: closest painted frame {int(np.argmin(errs))}, want {want} "
                                f"(mean abs error {errs[want]:.1f})"
                            )
            if used != set(shipped.files):
                problems.append(f"npz keys not in json: {sorted(set(shipped.files) - used)}")
            status = "OK" if not problems else "FAIL"
            print(f"{jpath.stem}: {status} ({len(doc['items'])} items)")
            for p in problems:
                print("   ", p)
            failures += bool(problems)
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder, e.g. tests/data/lerobot")
    ap.add_argument("--verify", action="store_true", help="only reload and compare, write nothing")
    ap.add_argument("--only", nargs="*", help="dataset names to (re)make or verify (default: all)")
    args = ap.parse_args()
    try:
        if args.verify:
            return 1 if verify(args.out, args.only) else 0
        make(args.out, args.only)
        return 0
    finally:
        shutil.rmtree(_CACHE, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
