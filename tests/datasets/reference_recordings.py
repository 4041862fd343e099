"""What the reference datasets of tests/data/lerobot hold: for each, the frame rate, cameras, episode
lengths, tasks, extra features and writer sessions, and the deterministic frame content.

LeRobot 0.6.1 recorded them from this recipe (tools/lerobot_reference/make_reference.py); the writer
tests record the same frames with dexloop's writer and compare the files and items with LeRobot's.
"""

from __future__ import annotations

import numpy as np

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


def record_episode(dataset, spec: dict, features: dict, episode: int) -> None:
    """Adds and saves one episode of the recipe to a dataset being recorded (LeRobot's or dexloop's)."""
    length = spec["lengths"][episode]
    values = episode_values(spec["seed"], episode, length)
    for f in range(length):
        frame = {"task": frame_task(spec, episode, f, length)}
        for key, feature in features.items():
            if feature["dtype"] in ("video", "image"):
                height, width = spec["cameras"][key]
                frame[key] = paint_frame(episode, f, height, width)
            else:
                frame[key] = values[key][f]
        dataset.add_frame(frame)
    dataset.save_episode()


def record(dataset_class, name: str, root, features: dict, rgb_encoder) -> None:
    """Records dataset `name` of the recipe at `root` with `dataset_class` (LeRobot's or dexloop's
    LeRobotDataset): its writer sessions through create() and resume(), with the recipe's chunk
    settings per session."""
    spec = DATASETS[name]
    for session, episodes in enumerate(spec["sessions"]):
        if session == 0:
            dataset = dataset_class.create(
                repo_id=f"dexloop/{name}",
                fps=spec["fps"],
                features=features,
                root=root,
                robot_type="dexloop_sim",
                use_videos=camera_dtype(spec) == "video",
                rgb_encoder=rgb_encoder,
                **spec["create_kwargs"],
            )
        else:
            dataset = dataset_class.resume(f"dexloop/{name}", root=root, rgb_encoder=rgb_encoder)
        limits = spec.get("session_size_limits", {}).get(session)
        if limits:
            dataset.meta.update_chunk_settings(**limits)
        for episode in episodes:
            record_episode(dataset, spec, features, episode)
        if limits:
            # LeRobot's integer defaults back, so that info.json holds the usual ints (100 / 200 MB).
            dataset.meta.update_chunk_settings(data_files_size_in_mb=100, video_files_size_in_mb=200)
        dataset.finalize()
