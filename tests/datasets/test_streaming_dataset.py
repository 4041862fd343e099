"""StreamingLeRobotDataset: items streamed from a Hub-like HTTP server on 127.0.0.1 (tests/hub_server.py)
equal the map-style items of the same frames, including cameras with several mp4 files; LeRobot's
arguments (episodes, delta_timestamps, shuffle buffer, seed) are honoured; failures are typed errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from support import LEROBOT_DATA, assert_same_values, writable_copy

from dexloop.datasets import LeRobotDataset, StreamingLeRobotDataset
from dexloop.errors import (
    DatasetArgumentError,
    DatasetNotFoundError,
    DeltaTimestampsError,
    VideoDecodeError,
)

from hub_server import LocalHub


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The local Hub serving the LeRobot-written reference datasets as user/<name>, with
    huggingface_hub pointed at it and a fresh, empty LeRobot home."""
    with LocalHub() as server:
        for folder in sorted(LEROBOT_DATA.iterdir()):
            if (folder / "meta" / "info.json").is_file():
                server.add_dataset(f"user/{folder.name}", folder)
        server.point_hub_here(monkeypatch)
        monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot_home"))
        yield server


def _windows(name: str) -> dict[str, list[float]]:
    """delta_timestamps over every kind of feature of the dataset: the first camera a frame back and
    ahead, the state two frames back, the action three ahead."""
    info = json.loads((LEROBOT_DATA / name / "meta" / "info.json").read_text())
    step = 1 / info["fps"]
    features = info["features"]
    windows = {}
    cameras = [key for key, f in features.items() if f["dtype"] in ("video", "image")]
    if cameras:
        windows[cameras[0]] = [-step, 0.0, step]
    if "observation.state" in features:
        windows["observation.state"] = [-2 * step, 0.0]
    if "action" in features:
        windows["action"] = [0.0, step, 2 * step, 3 * step]
    return windows


def _by_index(items: list[dict]) -> dict[int, dict]:
    found = {}
    for item in items:
        index = int(item["index"])
        assert index not in found, f"frame {index} streamed twice"
        found[index] = item
    return found


@pytest.mark.parametrize(
    "name", ["fps50_multifile", "two_cams_fps10", "images_fps10", "public_0", "h264_fps30"]
)
@pytest.mark.parametrize("windowed", [False, True], ids=["plain", "window"])
def test_streamed_items_equal_map_style_items(hub: LocalHub, name: str, windowed: bool) -> None:
    delta_timestamps = _windows(name) if windowed else None
    stream = StreamingLeRobotDataset(
        f"user/{name}", delta_timestamps=delta_timestamps, buffer_size=8, return_uint8=True
    )
    assert stream.streams_from_hub
    mapped = LeRobotDataset(
        name, root=LEROBOT_DATA / name, delta_timestamps=delta_timestamps, return_uint8=True
    )
    streamed = _by_index(list(stream))
    assert sorted(streamed) == list(range(len(mapped))) == list(range(len(stream)))
    for index, item in streamed.items():
        assert_same_values(item, mapped[index])


def test_several_mp4_files_per_camera_give_the_right_frames(hub: LocalHub) -> None:
    """fps50_multifile's camera is spread over four mp4 files: each streamed frame is the one whose
    pixels the map-style reader (checked against LeRobot's own items elsewhere) returns, decoded
    from the file of its episode, not from index / fps in the first file."""
    meta = LeRobotDataset("m", root=LEROBOT_DATA / "fps50_multifile").meta
    files = {str(meta.get_video_file_path(e, "observation.images.top")) for e in range(meta.total_episodes)}
    assert len(files) > 1
    stream = StreamingLeRobotDataset("user/fps50_multifile", return_uint8=True, shuffle=False)
    mapped = LeRobotDataset("m", root=LEROBOT_DATA / "fps50_multifile", return_uint8=True)
    for item in stream:
        expected = mapped[int(item["index"])]["observation.images.top"]
        assert torch.equal(item["observation.images.top"], expected), int(item["index"])
    fetched = {r.path.split("/resolve/", 1)[1].split("/", 1)[1] for r in hub.file_requests(".mp4")}
    assert fetched == files


def test_files_are_read_in_place_by_range_requests(hub: LocalHub, tmp_path: Path) -> None:
    stream = StreamingLeRobotDataset("user/two_cams_fps10", return_uint8=True)
    hub.clear_log()
    assert len(list(stream)) == 25
    reads = [r for r in hub.file_requests() if r.method == "GET" and "/meta/" not in r.path]
    assert {Path(r.path).suffix for r in reads} == {".parquet", ".mp4"}
    assert all(r.range and r.range.startswith("bytes=") for r in reads), [r for r in reads if not r.range]
    # Only meta/ was downloaded; the data and videos stayed on the server.
    downloaded = {p.suffix for p in (tmp_path / "lerobot_home").rglob("*") if p.is_file()}
    assert ".mp4" not in downloaded
    assert not [p for p in (tmp_path / "lerobot_home").rglob("data/*/*.parquet")]


def test_episodes_are_honoured(hub: LocalHub) -> None:
    windows = _windows("fps50_multifile")
    stream = StreamingLeRobotDataset("user/fps50_multifile", episodes=[4, 1], delta_timestamps=windows)
    mapped = LeRobotDataset("m", root=LEROBOT_DATA / "fps50_multifile", delta_timestamps=windows)
    streamed = _by_index(list(stream))
    lengths = mapped.meta.episodes.column("length")
    assert len(streamed) == len(stream) == int(lengths[1] + lengths[4])
    assert {int(item["episode_index"]) for item in streamed.values()} == {1, 4}
    for index, item in streamed.items():
        assert_same_values(item, mapped[index])


def test_shuffle_buffer_and_seed(hub: LocalHub) -> None:
    def order(**kwargs) -> list[int]:
        return [int(item["index"]) for item in StreamingLeRobotDataset("user/public_0", **kwargs)]

    first = order(seed=7, buffer_size=16)
    assert sorted(first) == list(range(107))
    assert first != sorted(first)  # shuffled
    assert order(seed=7, buffer_size=16) == first  # reproducible from the seed
    assert order(seed=8, buffer_size=16) != first
    fixed = StreamingLeRobotDataset("user/public_0", seed=3, shuffle=False)
    assert [int(i["index"]) for i in fixed] == [int(i["index"]) for i in fixed]  # same order each pass
    moving = StreamingLeRobotDataset("user/public_0", seed=3, shuffle=True)
    passes = [[int(i["index"]) for i in moving] for _ in range(2)]
    assert passes[0] != passes[1] and sorted(passes[0]) == sorted(passes[1])
    # A buffer of one frame cannot reorder: frames come in file order within each shard.
    in_order = order(buffer_size=1, max_num_shards=1)
    assert in_order == list(range(107))


def test_dataloader_workers_share_the_episodes(hub: LocalHub) -> None:
    stream = StreamingLeRobotDataset("user/fps50_multifile", return_uint8=True, decode_threads=1)
    loader = torch.utils.data.DataLoader(stream, batch_size=5, num_workers=2)
    indices = [int(i) for batch in loader for i in batch["index"]]
    assert sorted(indices) == list(range(77))


def test_local_root_and_non_streaming_download(hub: LocalHub, tmp_path: Path) -> None:
    local = StreamingLeRobotDataset("user/h264_fps30", root=LEROBOT_DATA / "h264_fps30")
    assert not local.streams_from_hub
    assert len(list(local)) == 16
    target = tmp_path / "downloaded"
    downloaded = StreamingLeRobotDataset("user/h264_fps30", root=target, streaming=False, return_uint8=True)
    assert not downloaded.streams_from_hub
    assert sorted(p.name for p in target.rglob("*.mp4"))
    mapped = LeRobotDataset("h", root=LEROBOT_DATA / "h264_fps30", return_uint8=True)
    for item in downloaded:
        assert_same_values(item, mapped[int(item["index"])])


def test_token_is_sent_with_every_request(hub: LocalHub) -> None:
    stream = StreamingLeRobotDataset("user/images_fps10", token="hf_streamtoken")
    hub.clear_log()
    list(stream)
    stream = StreamingLeRobotDataset("user/h264_fps30", token="hf_streamtoken")
    list(stream)
    reads = hub.file_requests()
    assert {r.authorization for r in reads} == {"Bearer hf_streamtoken"}
    assert any(r.path.endswith(".mp4") for r in reads)


def test_failures_are_typed_errors(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatasetNotFoundError, match="user/missing"):
        StreamingLeRobotDataset("user/missing")
    with pytest.raises(DatasetArgumentError, match="buffer_size"):
        StreamingLeRobotDataset("user/public_0", buffer_size=0)
    with pytest.raises(DeltaTimestampsError, match="not features"):
        StreamingLeRobotDataset("user/public_0", delta_timestamps={"nope": [0.0]})
    # A video the server refuses: a VideoDecodeError naming the URL, not a hang or a wrong frame.
    stream = StreamingLeRobotDataset("user/public_0", return_uint8=True)
    hub.failures["/videos/"] = 500
    with pytest.raises(VideoDecodeError, match=r"file-000\.mp4"):
        list(stream)
    hub.failures.clear()
    # Offline with nothing local: a clear error before any request.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError, match="HF_HUB_OFFLINE"):
        StreamingLeRobotDataset("user/public_0")


def test_damaged_remote_parquet_names_the_file(hub: LocalHub, tmp_path: Path) -> None:
    from dexloop.errors import DatasetError

    damaged = writable_copy(LEROBOT_DATA / "public_0", tmp_path)
    data = next(damaged.glob("data/*/*.parquet"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    hub.add_dataset("user/damaged", damaged)
    stream = StreamingLeRobotDataset("user/damaged")
    with pytest.raises(DatasetError, match=data.name):
        list(stream)
