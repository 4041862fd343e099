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

STATE_DIM = 4
ACTION_DIM = 4
# the optional typed features (spec "extra" names -> feature keys)
EXTRA_KEYS = (
    "observation.pose",
    "observation.counter",
    "next.done",
    "observation.grid",
    "observation.volume",
    "observation.field4d",
    "observation.field5d",
)
# shapes of the 3-D..5-D features (read as datasets' Array3D..Array5D once `datasets` is imported)
ND_SHAPES = {
    "observation.volume": (2, 3, 2),
    "observation.field4d": (2, 1, 3, 2),
    "observation.field5d": (1, 2, 1, 2, 3),
}


# ----------------------------------------------------------------------------------------------
# What to record
# ----------------------------------------------------------------------------------------------
# Each dataset: fps, cameras {key: (h, w)}, episode lengths, a task per episode (a (first, second)
# tuple switches task half-way through the episode), extra features, writer sessions (each a list of
# episodes; the first session is create(), later ones resume()), and the subset for the subset query.
DATASETS: dict[str, dict] = {
    "two_cams_fps10": {
        "seed": 1,
        "fps": 10,
        "cameras": {"observation.images.front": (48, 64), "observation.images.wrist": (32, 40)},
        "lengths": [7, 1, 12, 5],
        "tasks": ["pick the cube", "place the cube", "pick the cube", "push the block"],
        "extra": [],
        "sessions": [[0, 1, 2, 3]],
        "create_kwargs": {},
        "subset": [1, 3],
        # single: one-element delta lists (the video squeeze quirk), the front camera not windowed.
        "extra_queries": {
            "single": {"observation.state": [0], "observation.images.wrist": [-1]},
        },
    },
    "fps15_types": {
        "seed": 2,
        "fps": 15,
        "cameras": {"observation.images.top": (40, 56)},
        "lengths": [9, 14, 1],
        # episode 1 switches task half-way (one new task only, so task_index order is deterministic).
        "tasks": ["stack the cups", ("stack the cups", "wipe the table"), "wipe the table"],
        "extra": ["float64", "int32", "bool", "float32_2d"],
        "sessions": [[0, 1, 2]],
        "create_kwargs": {},
        "subset": [0, 2],
        "extra_indices": [15],  # last frame of episode 1 before its task switch
        "extra_queries": {},
    },
    "fps50_multifile": {
        "seed": 3,
        "fps": 50,
        "cameras": {"observation.images.top": (32, 48)},
        "lengths": [20, 3, 25, 1, 18, 10],
        "tasks": ["reach", "reach", "grasp", "reach", "grasp", "lift"],
        "extra": [],
        # Session 1 (create) uses sub-MB file-size limits so that LeRobot's own size rule rolls files
        # over inside a session; sessions 2 and 3 (resume) always start new files.
        "sessions": [[0, 1, 2], [3, 4], [5]],
        "create_kwargs": {},
        "session_size_limits": {0: {"video_files_size_in_mb": 0.006, "data_files_size_in_mb": 0.0018}},
        "subset": [1, 3, 4],
        "extra_queries": {},
    },
    "h264_fps30": {
        "seed": 4,
        "fps": 30,
        "cameras": {"observation.images.top": (48, 64)},
        "lengths": [10, 6],
        "tasks": ["pick the cube", "place the cube"],
        # the 2-D feature lives here: LeRobot 0.6.1 cannot save it in a one-frame episode (fps15_types)
        "extra": ["float32_2d"],
        "sessions": [[0, 1]],
        "encoder": {"vcodec": "h264", "pix_fmt": "yuv420p", "g": 2, "crf": 23},
        "create_kwargs": {},
        "subset": [1],
        "extra_queries": {},
    },
    "nd_features": {
        "seed": 5,
        "fps": 20,
        "cameras": {},
        "lengths": [4, 3, 5],
        "tasks": ["fold", "unfold", "fold"],
        # features of 2 to 5 dimensions (no episode of one frame: LeRobot cannot save those)
        "extra": ["float32_2d", "float32_3d", "float32_4d", "float32_5d"],
        "sessions": [[0, 1, 2]],
        "create_kwargs": {},
        "subset": [1],
        "extra_queries": {},
    },
    "images_fps10": {
        "seed": 6,
        "fps": 10,
        # the camera stored as PNG images inside the parquet files (use_videos=False)
        "camera_storage": "image",
        "cameras": {"observation.images.top": (24, 32)},
        "lengths": [3, 4],
        "tasks": ["pick the cube", "place the cube"],
        "extra": [],
        "sessions": [[0, 1]],
        "create_kwargs": {},
        "subset": [1],
        "extra_queries": {},
    },
}


# ----------------------------------------------------------------------------------------------
# Frame content
# ----------------------------------------------------------------------------------------------
def paint_frame(episode: int, frame: int, h: int, w: int) -> np.ndarray:
    """HWC uint8 frame with the shared fixture's colouring scheme (see tests/data/lerobot/README.md)."""
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[..., 0] = (frame * 23) % 256
    img[..., 1] = (episode * 67 + 30) % 256
    img[..., 2] = ((np.arange(w) * 255) // (w - 1)).astype(np.uint8)[None, :]
    bs = 16 if w >= 32 else w // 2
    bh = min(bs, h)
    y0 = 8 if h >= bh + 8 else 0
    x0 = (frame * 5) % (w - bs)
    img[y0 : y0 + bh, x0 : x0 + bs] = 255 - img[y0 : y0 + bh, x0 : x0 + bs]
    return img


def episode_values(seed: int, episode: int, length: int) -> dict[str, np.ndarray]:
    """Deterministic per-frame values of the non-camera features of one episode."""
    f = np.arange(length, dtype=np.float64)[:, None]
    j = np.arange(STATE_DIM, dtype=np.float64)[None, :]
    rng = np.random.default_rng([seed, episode])
    return {
        # smooth, readable: episode*10 + frame*0.1 + joint*0.01
        "observation.state": (episode * 10.0 + f * 0.1 + j * 0.01).astype(np.float32),
        "action": rng.uniform(-1.0, 1.0, size=(length, ACTION_DIM)).astype(np.float32),
        # float64 values that float32 cannot hold exactly (LeRobot returns them as float32)
        "observation.pose": (rng.standard_normal((length, 3)) + episode).astype(np.float64),
        "observation.counter": (episode * 1000 + np.arange(length)).astype(np.int32)[:, None],
        "next.done": (np.arange(length) == length - 1)[:, None],
        "observation.grid": (
            np.arange(6, dtype=np.float32)[None, :] * 0.5
            + episode
            + np.arange(length, dtype=np.float32)[:, None]
        ).reshape(length, 2, 3),
        **{
            key: (
                np.arange(int(np.prod(shape)), dtype=np.float32)[None, :] * 0.25
                + episode * 100
                + np.arange(length, dtype=np.float32)[:, None] * 10
            ).reshape(length, *shape)
            for key, shape in ND_SHAPES.items()
        },
    }


def build_features(spec: dict) -> dict:
    feats: dict = {
        "observation.state": {
            "dtype": "float32",
            "shape": (STATE_DIM,),
            "names": [f"j{i}" for i in range(STATE_DIM)],
        },
        "action": {"dtype": "float32", "shape": (ACTION_DIM,), "names": [f"j{i}" for i in range(ACTION_DIM)]},
    }
    for key, (h, w) in spec["cameras"].items():
        feats[key] = {
            "dtype": camera_dtype(spec),
            "shape": (h, w, 3),
            "names": ["height", "width", "channels"],
        }
    extra = spec["extra"]
    if "float64" in extra:
        feats["observation.pose"] = {"dtype": "float64", "shape": (3,), "names": ["x", "y", "z"]}
    if "int32" in extra:
        feats["observation.counter"] = {"dtype": "int32", "shape": (1,), "names": None}
    if "bool" in extra:
        feats["next.done"] = {"dtype": "bool", "shape": (1,), "names": None}
    if "float32_2d" in extra:
        feats["observation.grid"] = {"dtype": "float32", "shape": (2, 3), "names": None}
    for key, shape in ND_SHAPES.items():
        if f"float32_{len(shape)}d" in extra:
            feats[key] = {"dtype": "float32", "shape": shape, "names": None}
    return feats


def camera_dtype(spec: dict) -> str:
    """How the dataset stores its cameras: "video" (mp4, the default) or "image" (PNG in parquet)."""
    return spec.get("camera_storage", "video")


def video_cameras(spec: dict) -> dict:
    return spec["cameras"] if camera_dtype(spec) == "video" else {}


def frame_task(spec: dict, episode: int, frame: int, length: int) -> str:
    t = spec["tasks"][episode]
    if isinstance(t, tuple):
        return t[0] if frame < (length + 1) // 2 else t[1]
    return t


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
    for s, episodes in enumerate(spec["sessions"]):
        if s == 0:
            ds = LeRobotDataset.create(
                repo_id=repo_id,
                fps=spec["fps"],
                features=features,
                root=root,
                robot_type="dexloop_sim",
                use_videos=camera_dtype(spec) == "video",
                rgb_encoder=encoder,
                **spec["create_kwargs"],
            )
        else:
            ds = LeRobotDataset.resume(repo_id, root=root, rgb_encoder=encoder)
        limits = spec.get("session_size_limits", {}).get(s)
        if limits:
            ds.meta.update_chunk_settings(**limits)
        for ep in episodes:
            length = spec["lengths"][ep]
            vals = episode_values(spec["seed"], ep, length)
            for f in range(length):
                frame = {"task": frame_task(spec, ep, f, length)}
                for key, ft in features.items():
                    if ft["dtype"] in ("video", "image"):
                        h, w = spec["cameras"][key]
                        frame[key] = paint_frame(ep, f, h, w)
                    else:
                        frame[key] = vals[key][f]
                ds.add_frame(frame)
            ds.save_episode()
        if limits:
            # Put LeRobot's integer defaults back so info.json holds the usual ints (100 / 200 MB).
            ds.meta.update_chunk_settings(data_files_size_in_mb=100, video_files_size_in_mb=200)
        ds.finalize()
        del ds
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
