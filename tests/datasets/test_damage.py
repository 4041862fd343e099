"""Generated damage over a small dataset, class by class: every file deleted, emptied, truncated or
replaced; every parquet column dropped, renamed or retyped; NaN, infinite, negative, huge and
off-by-one values in every numeric metadata field and default column; videos swapped or re-encoded at
another fps, size or codec; bytes flipped across mp4 files; bad indices, episodes and delta_timestamps.

Each case either reads back items equal to the undamaged dataset's, or raises an error from
dexloop.errors whose message names the file and the column or key involved. Any other exception, a
crash, a hang (pytest-timeout) or a differing item fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from support import assert_same_values, requires_ffmpeg

from dexloop.datasets import LeRobotDataset
from dexloop.errors import DexloopError

from synth import CameraSpec, assert_painted_frame, write_v3_dataset

FPS = 10
LENGTHS = [6, 5, 7]
AV1 = "observation.images.front"  # 64x64 AV1: episodes 0-1 in file-000, episode 2 in file-001
H264 = "observation.images.wrist"  # 32x48 H.264: one file per episode
INFO = "meta/info.json"
EPISODES = ["meta/episodes/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-001.parquet"]
DATA = ["data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet"]
AV1_VIDEOS = [f"videos/{AV1}/chunk-000/file-00{i}.mp4" for i in range(2)]
H264_VIDEOS = [f"videos/{H264}/chunk-000/file-00{i}.mp4" for i in range(3)]
FILES = [INFO, "meta/stats.json", "meta/tasks.parquet", *EPISODES, *DATA, *AV1_VIDEOS, *H264_VIDEOS]

pytestmark = [requires_ffmpeg(), pytest.mark.timeout(300)]


# -- the dataset and the judge ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("damage") / "pristine"
    write_v3_dataset(
        root,
        fps=FPS,
        episode_lengths=LENGTHS,
        cameras={AV1: CameraSpec(64, 64), H264: CameraSpec(32, 48, codec="libx264")},
        extra_features={"observation.counter": ("int32", [1])},
        episodes_per_data_file=2,
        episodes_per_video_file={AV1: 2, H264: 1},
    )
    # LeRobot rolls episode metadata over into several files as well; two let one go missing.
    path = root / EPISODES[0]
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 2), path)
    pq.write_table(table.slice(2), root / EPISODES[1])
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == sorted(FILES)
    return root


@pytest.fixture(scope="module")
def reference(pristine: Path) -> list[dict]:
    dataset = open_dataset(pristine)
    return [dataset[i] for i in range(len(dataset))]


@pytest.fixture
def copy(pristine: Path, tmp_path: Path) -> Callable[[], Path]:
    """Makes a fresh writable copy of the pristine dataset for each damage."""
    counter = iter(range(10**6))

    def make() -> Path:
        root = tmp_path / f"case{next(counter)}"
        shutil.copytree(pristine, root)
        return root

    return make


def open_dataset(root: Path, **kwargs) -> LeRobotDataset:
    return LeRobotDataset("dexloop/damage", root=root, return_uint8=True, decode_threads=2, **kwargs)


def judge(
    root: Path,
    reference: list[dict],
    names: Sequence[str | tuple[str, ...]],
    *,
    frames: str = "exact",
    **kwargs,
) -> str:
    """Opens `root` and reads every item, in one batch and one by one. Returns "same" when every item
    equals `reference`'s, "error" when a dexloop error names each entry of `names` (a tuple entry:
    any one of its strings). Other exceptions propagate, failing the test. Video frames are compared
    byte for byte (`frames="exact"`), or need only show the right painted frame ("painted"), or are
    not compared ("unchecked": bytes flipped inside compressed frame data that no decoder can tell
    from valid data)."""
    try:
        dataset = open_dataset(root, **kwargs)
        batch = dataset.__getitems__(list(range(len(dataset))))
        single = [dataset[i] for i in range(len(dataset))]
    except DexloopError as error:
        message = str(error)
        for name in names:
            options = (name,) if isinstance(name, str) else name
            assert any(option in message for option in options), (
                f"{type(error).__name__} names none of {options}: {message}"
            )
        return "error"
    assert len(batch) == len(reference)
    for items in (batch, single):
        for got, want in zip(items, reference, strict=True):
            if frames == "exact":
                assert_same_values(got, want)
                continue
            assert_same_values(
                {k: v for k, v in got.items() if k not in (AV1, H264)},
                {k: v for k, v in want.items() if k not in (AV1, H264)},
            )
            for key in (AV1, H264):
                assert got[key].shape == want[key].shape
                if frames == "painted":
                    assert_painted_frame(got[key], int(want["episode_index"]), int(want["frame_index"]))
    return "same"


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def rewrite_parquet(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def columns_of(pristine: Path, relative: str) -> list[str]:
    return pq.read_schema(pristine / relative).names


# -- whole files ------------------------------------------------------------------------------

FILE_DAMAGE = {
    "delete": lambda path: path.unlink(),
    "empty": lambda path: path.write_bytes(b""),
    "truncate": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "garbage": lambda path: path.write_bytes(
        np.random.default_rng(7).integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes()
    ),
}


@pytest.mark.parametrize("damage", sorted(FILE_DAMAGE))
def test_every_file_deleted_emptied_truncated_or_replaced(copy, reference, damage: str) -> None:
    for relative in FILES:
        root = copy()
        FILE_DAMAGE[damage](root / relative)
        outcome = judge(root, reference, [relative])
        # Only the stats are not needed to read items.
        assert outcome == "error" or relative == "meta/stats.json", (relative, damage)


# -- parquet columns --------------------------------------------------------------------------


def retyped(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column in another type: integers as floats, floats truncated to integers, bools as
    integers, strings as bytes; lists keep their shape with retyped values."""
    kind = column.type
    if pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind):
        values = retyped(pa.chunked_array([pc.list_flatten(column)]))
        lengths = pc.list_value_length(column).to_numpy()
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.chunked_array([pa.ListArray.from_arrays(pa.array(offsets), values.combine_chunks())])
    if pa.types.is_integer(kind):
        return pc.cast(column, pa.float64())
    if pa.types.is_floating(kind):
        return pc.cast(column, pa.int64(), safe=False)
    if pa.types.is_boolean(kind):
        return pc.cast(column, pa.int64())
    return pc.cast(column, pa.binary())


COLUMN_DAMAGE = {
    "drop": lambda table, name: table.drop_columns([name]),
    "rename": lambda table, name: table.rename_columns(
        [f"{n}_renamed" if n == name else n for n in table.column_names]
    ),
    "retype": lambda table, name: table.set_column(
        table.column_names.index(name), name, retyped(table.column(name))
    ),
}


@pytest.mark.parametrize("damage", sorted(COLUMN_DAMAGE))
@pytest.mark.parametrize("relative", [*EPISODES, *DATA, "meta/tasks.parquet"])
def test_every_column_dropped_renamed_or_retyped(copy, pristine, reference, relative, damage) -> None:
    outcomes = []
    for name in columns_of(pristine, relative):
        root = copy()
        rewrite_parquet(root / relative, lambda table, name=name: COLUMN_DAMAGE[damage](table, name))
        outcomes.append((name, judge(root, reference, [relative, name])))
    if relative in DATA:  # every data column is a declared feature
        assert all(outcome == "error" for _, outcome in outcomes), outcomes


def test_a_metadata_column_missing_from_every_episodes_file(copy, reference) -> None:
    for name in ["dataset_from_index", f"videos/{AV1}/from_timestamp", f"videos/{H264}/file_index"]:
        root = copy()
        for relative in EPISODES:
            rewrite_parquet(root / relative, lambda table, name=name: table.drop_columns([name]))
        assert judge(root, reference, ["meta/episodes", name]) == "error"


# -- values in metadata and default columns ---------------------------------------------------


def with_value(table: pa.Table, name: str, row: int, value) -> pa.Table:
    values = table.column(name).to_pylist()
    values[row] = value
    kind = table.schema.field(name).type
    if isinstance(value, float) and pa.types.is_integer(kind):
        kind = pa.float64()
    return table.set_column(table.column_names.index(name), name, pa.array(values, kind))


def bad_values(kind: pa.DataType, current) -> list:
    if pa.types.is_integer(kind):
        return [-1, 2**62, current + 1, current - 1, float("nan")]
    return [float("nan"), float("inf"), -1.0, 1e12, current + 1.0 / FPS, current - 1.0 / FPS]


EPISODE_NUMBERS = [
    "episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
    "dataset_to_index", *(f"videos/{key}/{part}" for key in (AV1, H264)
                          for part in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")),
]  # fmt: skip


@pytest.mark.parametrize("relative", EPISODES)
def test_bad_values_in_every_numeric_episode_column(copy, pristine, reference, relative) -> None:
    table = pq.read_table(pristine / relative)
    for name in EPISODE_NUMBERS:
        for row in range(table.num_rows):
            current = table.column(name)[row].as_py()
            for value in bad_values(table.schema.field(name).type, current):
                root = copy()
                rewrite_parquet(root / relative, lambda t, n=name, r=row, v=value: with_value(t, n, r, v))
                # A chunk or file index sends the reader to a file that does not exist: that file
                # (whose name holds the value) is what the error names.
                names = [
                    (relative, "meta/episodes"),
                    (name, f"{value:03d}" if isinstance(value, int) else name),
                ]
                judge(root, reference, names)


DEFAULT_COLUMNS = ["timestamp", "frame_index", "episode_index", "index", "task_index"]


@pytest.mark.parametrize("relative", DATA)
def test_bad_values_in_every_default_data_column(copy, pristine, reference, relative) -> None:
    table = pq.read_table(pristine / relative)
    for name in DEFAULT_COLUMNS:
        for row in (0, table.num_rows - 1):
            current = table.column(name)[row].as_py()
            for value in bad_values(table.schema.field(name).type, current):
                root = copy()
                rewrite_parquet(root / relative, lambda t, n=name, r=row, v=value: with_value(t, n, r, v))
                # An int column given a NaN turns float, which the declared dtype rejects.
                assert judge(root, reference, [relative, name]) == "error", (name, row, value)


INFO_FIELDS: dict[str, Callable[[dict], tuple[dict, str]]] = {
    "fps": lambda info: (info, "fps"),
    "total_episodes": lambda info: (info, "total_episodes"),
    "total_frames": lambda info: (info, "total_frames"),
    "total_tasks": lambda info: (info, "total_tasks"),
    "chunks_size": lambda info: (info, "chunks_size"),
    "video.fps": lambda info: (info["features"][AV1]["info"], "video.fps"),
    "video.height": lambda info: (info["features"][H264]["info"], "video.height"),
    "video.width": lambda info: (info["features"][AV1]["info"], "video.width"),
}


@pytest.mark.parametrize("field", sorted(INFO_FIELDS))
def test_bad_values_in_every_numeric_info_field(copy, reference, field: str) -> None:
    for value in [float("nan"), float("inf"), -1, 0, 2.5, 10**12, "+1", "-1"]:
        root = copy()

        def change(info: dict, value=value) -> None:
            parent, key = INFO_FIELDS[field](info)
            parent[key] = parent[key] + int(value) if isinstance(value, str) else value

        edit_json(root / INFO, change)
        outcome = judge(root, reference, [field, (INFO, ".mp4", ".parquet")])
        if field != "chunks_size":  # v3.0 paths take the chunk from the episode metadata
            assert outcome == "error", (field, value)


@pytest.mark.parametrize("key", [AV1, H264])
@pytest.mark.parametrize("axis", [0, 1])
def test_camera_shape_other_than_the_videos(copy, reference, key: str, axis: int) -> None:
    for change in (+1, -1, 10**6):
        root = copy()

        def resize(info: dict, change: int = change) -> None:
            info["features"][key]["shape"][axis] += change

        edit_json(root / INFO, resize)
        assert judge(root, reference, [key, "shape"]) == "error"


def test_codec_other_than_declared(copy, reference) -> None:
    root = copy()
    edit_json(root / INFO, lambda info: info["features"][AV1]["info"].update({"video.codec": "h264"}))
    assert judge(root, reference, [AV1_VIDEOS[0], "video.codec"]) == "error"


# -- videos -----------------------------------------------------------------------------------


def swap(root: Path, first: str, second: str) -> None:
    a, b = root / first, root / second
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def reencode(path: Path, *options: str) -> None:
    output = path.with_name("reencoded.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(path),
            *options,
            "-pix_fmt",
            "yuv420p",
            str(output),
        ],
        check=True,
    )
    output.replace(path)


SVT = ["-c:v", "libsvtav1", "-preset", "12", "-g", "2"]
VIDEO_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "av1 files swapped": (lambda root: swap(root, *AV1_VIDEOS), AV1_VIDEOS[0]),
    "h264 files swapped": (lambda root: swap(root, H264_VIDEOS[0], H264_VIDEOS[2]), H264_VIDEOS[0]),
    "another camera's file": (lambda root: shutil.copy(root / H264_VIDEOS[2], root / AV1_VIDEOS[1]), AV1_VIDEOS[1]),
    "re-encoded at 20 fps": (lambda root: reencode(root / AV1_VIDEOS[0], *SVT, "-r", "20"), AV1_VIDEOS[0]),
    "re-encoded at 5 fps": (lambda root: reencode(root / H264_VIDEOS[1], "-c:v", "libx264", "-r", "5"), H264_VIDEOS[1]),
    "re-encoded larger": (lambda root: reencode(root / AV1_VIDEOS[1], *SVT, "-vf", "scale=80:64"), AV1_VIDEOS[1]),
    "re-encoded as h264": (lambda root: reencode(root / AV1_VIDEOS[0], "-c:v", "libx264", "-g", "2"), AV1_VIDEOS[0]),
    "re-encoded as vp9": (lambda root: reencode(root / H264_VIDEOS[0], "-c:v", "libvpx-vp9"), H264_VIDEOS[0]),
}  # fmt: skip


@pytest.mark.parametrize("damage", sorted(VIDEO_DAMAGE))
def test_video_replaced_by_another_recording(copy, reference, damage: str) -> None:
    make, named = VIDEO_DAMAGE[damage]
    root = copy()
    make(root)
    assert judge(root, reference, [named]) == "error"


def ffmpeg_notices_damage(path: Path) -> bool:
    """Whether FFmpeg, decoding every frame as its command-line tool does, reports any error."""
    completed = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True
    )
    return completed.returncode != 0 or bool(completed.stderr.strip())


def flip_bytes(copy, reference, relative: str, offsets: Sequence[int]) -> list[str]:
    """Where FFmpeg notices the damage (it would log errors and conceal them), no concealed frame comes
    back: the read fails or every frame is the recorded one. Where it cannot notice (a flip inside
    entropy-coded data that still decodes; neither AV1 nor H.264 carries checksums), reading still
    ends in items or a typed error naming the file. Returns the outcomes of the noticed cases."""
    noticed = []
    for offset in offsets:
        root = copy()
        data = bytearray((root / relative).read_bytes())
        data[offset] ^= 0xFF
        (root / relative).write_bytes(bytes(data))
        damage_visible = ffmpeg_notices_damage(root / relative)
        outcome = judge(root, reference, [relative], frames="painted" if damage_visible else "unchecked")
        if damage_visible:
            noticed.append(outcome)
    return noticed


@pytest.mark.parametrize("relative", [AV1_VIDEOS[0], H264_VIDEOS[2]])
def test_bytes_flipped_across_an_mp4(copy, pristine, reference, relative: str) -> None:
    size = (pristine / relative).stat().st_size
    offsets = sorted({*range(0, 48, 4), *np.linspace(48, size - 1, 30).astype(int).tolist()})
    assert "error" in flip_bytes(copy, reference, relative, offsets)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("DEXLOOP_DAMAGE_CAMPAIGN"), reason="minutes long: set DEXLOOP_DAMAGE_CAMPAIGN=1"
)
@pytest.mark.parametrize("relative", [*AV1_VIDEOS, *H264_VIDEOS])
def test_bytes_flipped_all_over_every_mp4(copy, pristine, reference, relative: str) -> None:
    size = (pristine / relative).stat().st_size
    offsets = np.random.default_rng(size).choice(size, min(size, 300), replace=False)
    assert "error" in flip_bytes(copy, reference, relative, sorted(int(o) for o in offsets))


# -- arguments --------------------------------------------------------------------------------


def test_indices_that_are_not_integers_or_out_of_range(pristine, reference) -> None:
    dataset = open_dataset(pristine)
    for bad in [1.5, 2.0, True, np.float64(1.0), np.bool_(False), "3", None, 10**20, -(10**20), 18, -19,
                np.uint64(2**63), torch.tensor(1.0)]:  # fmt: skip
        with pytest.raises(DexloopError, match="index") as raised:
            dataset[bad]
        assert str(pristine) in str(raised.value)
        assert isinstance(raised.value, (TypeError, IndexError))
        with pytest.raises(DexloopError, match="index"):
            dataset.__getitems__([0, bad])
    for good, position in [(np.int64(2), 2), (np.int32(-1), 17), (torch.tensor(3), 3)]:
        assert_same_values(dataset[good], reference[position])


@pytest.mark.parametrize("episodes", [[0.5], [True], [10**20], [-1], ["0"], [np.float32(1)]])
def test_episodes_that_are_not_episode_indices(pristine, episodes) -> None:
    with pytest.raises(DexloopError, match="episodes") as raised:
        open_dataset(pristine, episodes=episodes)
    assert str(pristine) in str(raised.value)


@pytest.mark.parametrize(
    "deltas",
    [[float("nan")], [float("inf")], [-float("inf")], [1e300], [-1e18], ["0.1"], [True], [None], [0.05]],
)
def test_delta_timestamps_that_cannot_be_indexed(pristine, deltas) -> None:
    with pytest.raises(DexloopError, match=r"delta_timestamps\['action'\]") as raised:
        open_dataset(pristine, delta_timestamps={"action": [0.0, *deltas]})
    assert isinstance(raised.value, ValueError)  # as LeRobot's check raises


def test_huge_but_valid_delta_timestamps_pad_with_the_episode_ends(pristine, reference) -> None:
    far = 1e9  # 10**10 frames away: padded, never wrapped around
    dataset = open_dataset(pristine, delta_timestamps={"action": [-far, 0.0, far], AV1: [-far, far]})
    starts = np.cumsum([0, *LENGTHS[:-1]])
    for position in range(len(dataset)):
        item = dataset[position]
        episode = int(reference[position]["episode_index"])
        first, last = reference[starts[episode]], reference[starts[episode] + LENGTHS[episode] - 1]
        torch.testing.assert_close(
            item["action"], torch.stack([first["action"], reference[position]["action"], last["action"]])
        )
        assert item["action_is_pad"].tolist() == [True, False, True]
        assert torch.equal(item[AV1], torch.stack([first[AV1], last[AV1]]))
