"""The dataset tools that move episodes between datasets (delete-episodes, split, merge,
remove-feature) against LeRobot 0.6.1's.

* File by file: the metadata LeRobot's tools wrote for the same operations on the reference datasets
  (tests/data/lerobot_tools, made by tools/lerobot_reference/make_tools_reference.py) equals what
  dexloop's tools write: info.json, every episode row (renumbering, chunk/file indices, timestamps,
  per-episode stats with the shifted bookkeeping columns), stats.json, tasks, and which data and
  video files exist.
* Items: a merge of the splits of a dataset returns the original's items, video frames byte for
  byte (stream copy keeps the encoded frames).
* Bad input: each gets a typed error, and no output folder is left behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dexloop.datasets import LeRobotDataset
from dexloop.datasets.tools import delete_episodes, merge_datasets, remove_feature, split_dataset
from dexloop.errors import (
    DatasetArgumentError,
    DatasetError,
    DatasetExistsError,
    DatasetIndexError,
    VideoRemuxError,
)
from dexloop.video import VideoDecoder, remux_segments

DATA = Path(__file__).resolve().parents[1] / "data"
SOURCES = DATA / "lerobot"
REFERENCE = DATA / "lerobot_tools"
CASES = json.loads((REFERENCE / "cases.json").read_text())
TOOL_OF = {case: tool for case, tool, _ in CASES}
# Merges of splits: their inputs' tasks are in a different order (see test_metadata_equals_lerobots),
# so their task_index stats differ by that renumbering.
MERGES_OF_SPLITS = {case for case, tool, kwargs in CASES if tool == "merge" and "splits_of" in kwargs}


def source(name: str) -> LeRobotDataset:
    return LeRobotDataset(f"ref/{name}", root=SOURCES / name)


def run_case(work: Path, case: str, tool: str, kwargs: dict) -> dict[str, Path]:
    """Runs one reference case with dexloop's tools; returns {output name: root}."""
    target = work / case
    if tool == "delete":
        delete_episodes(
            source(kwargs["source"]), kwargs["episode_indices"], output_dir=target, repo_id=f"ref/{case}"
        )
        return {case: target}
    if tool == "split":
        split_dataset(source(kwargs["source"]), kwargs["splits"], output_dir=target)
        return {f"{case}/{name}": target / name for name in kwargs["splits"]}
    if tool == "merge":
        if "splits_of" in kwargs:
            split_case = next(c for c in CASES if c[0] == kwargs["splits_of"])
            if not (work / split_case[0]).exists():
                run_case(work, *split_case)
            parts = [LeRobotDataset(f"ref/{n}", root=work / kwargs["splits_of"] / n) for n in kwargs["names"]]
        else:
            parts = [source(name) for name in kwargs["sources"]]
        merge_datasets(parts, output_repo_id=f"ref/{case}", output_dir=target)
        return {case: target}
    remove_feature(
        source(kwargs["source"]), kwargs["feature_names"], output_dir=target, repo_id=f"ref/{case}"
    )
    return {case: target}


def episode_rows(root: Path) -> list[dict]:
    rows = []
    for path in sorted((root / "meta" / "episodes").glob("*/*.parquet")):
        for row in pq.read_table(path).to_pylist():
            row["_file"] = str(path.relative_to(root))
            rows.append(row)
    return rows


def assert_close(actual, expected, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), (
            f"{where}: keys {set(actual) ^ set(expected)}"
        )
        for key in expected:
            assert_close(actual[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, list) and expected and not isinstance(expected[0], str):
        np.testing.assert_allclose(
            np.asarray(actual, dtype=np.float64),
            np.asarray(expected, dtype=np.float64),
            rtol=1e-9,
            atol=1e-9,
            err_msg=where,
        )
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9), where
    else:
        assert actual == expected, where


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("tools")
    produced: dict[str, Path] = {}
    for case, tool, kwargs in CASES:
        if not (work / case).exists():
            produced.update(run_case(work, case, tool, kwargs))
        elif tool == "split":
            produced.update({f"{case}/{name}": work / case / name for name in kwargs["splits"]})
    return produced


REFERENCE_OUTPUTS = sorted(str(p.parent.relative_to(REFERENCE)) for p in REFERENCE.rglob("info.json"))


@pytest.mark.parametrize("name", REFERENCE_OUTPUTS)
def test_metadata_equals_lerobots(outputs, name):
    root, expected = outputs[name], REFERENCE / name
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info == json.loads((expected / "info.json").read_text())
    tasks = pq.read_table(root / "meta" / "tasks.parquet").to_pandas()
    tasks = {str(k): int(v) for k, v in tasks["task_index"].items()}
    expected_tasks = json.loads((expected / "tasks.json").read_text())
    hash_ordered = TOOL_OF[name.split("/")[0]] in ("delete", "split") or name in MERGES_OF_SPLITS
    if hash_ordered:
        # LeRobot numbers these tasks in the order of a Python set of strings (hash order); dexloop
        # keeps the source's order. The same tasks, each index used once.
        assert sorted(tasks) == sorted(expected_tasks) and sorted(tasks.values()) == list(range(len(tasks)))
    else:
        assert tasks == expected_tasks
    rows, expected_rows = episode_rows(root), json.loads((expected / "episodes.json").read_text())
    assert len(rows) == len(expected_rows)
    for row, expected_row in zip(rows, expected_rows, strict=True):
        assert list(row) == list(expected_row), f"{name}: episode columns"
        if name in MERGES_OF_SPLITS:
            for row_ in (row, expected_row):
                for column in [c for c in row_ if c.startswith("stats/task_index/")]:
                    del row_[column]
        assert_close(row, expected_row, f"{name} episode {expected_row['episode_index']}")
    assert_close(
        json.loads((root / "meta" / "stats.json").read_text()),
        json.loads((expected / "stats.json").read_text()),
        f"{name} stats",
    )
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "meta" not in p.parts)
    assert files == json.loads((expected / "files.json").read_text())


def assert_same_items(actual: LeRobotDataset, expected: LeRobotDataset, indices) -> None:
    for i, j in indices:
        a, b = actual[i], expected[j]
        assert list(a) == list(b)
        for key in b:
            if hasattr(b[key], "shape"):
                assert a[key].dtype == b[key].dtype and np.array_equal(
                    np.asarray(a[key]), np.asarray(b[key])
                ), (i, key)
            else:
                assert a[key] == b[key], (i, key)


@pytest.mark.parametrize("name", ["fps50_multifile", "two_cams_fps10", "h264_fps30", "images_fps10"])
def test_merge_of_splits_gives_back_the_items(tmp_path, name):
    original = source(name)
    n = original.meta.total_episodes
    odd, even = [e for e in range(n) if e % 2], [e for e in range(n) if not e % 2]
    parts = split_dataset(original, {"even": even, "odd": odd}, output_dir=tmp_path / "split")
    merged = merge_datasets([parts["even"], parts["odd"]], "ref/merged", output_dir=tmp_path / "merged")
    order = [e for e in even + odd]
    pairs, position = [], 0
    for e in order:
        row = original.meta.episodes[e]
        for k in range(row["dataset_to_index"] - row["dataset_from_index"]):
            pairs.append((position, row["dataset_from_index"] + k))
            position += 1
    merged_ok = [(i, j) for i, j in pairs]
    # Items other than the renumbered bookkeeping columns are the original's.
    for i, j in merged_ok:
        a, b = merged[i], original[j]
        for key in b:
            if key in ("index", "episode_index"):
                continue
            if hasattr(b[key], "shape"):
                assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), (name, i, key)
            else:
                assert a[key] == b[key], (name, i, key)
    assert [merged[i]["index"].item() for i, _ in pairs] == list(range(len(pairs)))


def test_split_then_merge_in_order_is_the_original(tmp_path):
    original = source("fps50_multifile")
    parts = split_dataset(original, {"a": [0, 1, 2], "b": [3, 4, 5]}, output_dir=tmp_path / "split")
    merged = merge_datasets([parts["a"], parts["b"]], "ref/merged", output_dir=tmp_path / "merged")
    assert len(merged) == len(original)
    assert_same_items(merged, original, [(i, i) for i in range(len(original))])


def test_delete_renumbers_and_keeps_the_frames(tmp_path):
    original = source("two_cams_fps10")
    kept = delete_episodes(original, [1], output_dir=tmp_path / "out")
    assert kept.repo_id == "ref/two_cams_fps10_modified"
    assert kept.meta.total_episodes == 3
    offset = original.meta.episodes[2]["dataset_from_index"]
    shift = offset - original.meta.episodes[0]["dataset_to_index"]
    for i in range(len(kept)):
        j = i if i < original.meta.episodes[0]["dataset_to_index"] else i + shift
        a, b = kept[i], original[j]
        assert a["index"].item() == i
        for key in ("observation.images.front", "observation.images.wrist", "action", "timestamp", "task"):
            assert (
                np.array_equal(np.asarray(a[key]), np.asarray(b[key]))
                if hasattr(b[key], "shape")
                else a[key] == b[key]
            )


def test_remuxed_file_is_a_regular_mp4(tmp_path):
    mp4 = SOURCES / "two_cams_fps10" / "videos" / "observation.images.front" / "chunk-000" / "file-000.mp4"
    out = tmp_path / "out.mp4"
    spans = remux_segments([(mp4, 0.8, 2.0), (mp4, 0.0, None)], out)
    assert spans == [(0.0, pytest.approx(1.2)), (pytest.approx(1.2), pytest.approx(3.7))]
    assert out.read_bytes()[4:8] == b"ftyp" and b"moov" in out.read_bytes()[:4096]  # index first
    decoded = VideoDecoder(str(out)).decode(np.arange(37) / 10)
    expected = np.concatenate(
        [
            VideoDecoder(str(mp4)).decode(np.arange(8, 20) / 10),
            VideoDecoder(str(mp4)).decode(np.arange(25) / 10),
        ]
    )
    assert np.array_equal(decoded, expected)
    with pytest.raises(VideoRemuxError, match="already exists"):
        remux_segments([(mp4, 0.0, None)], out)
    with pytest.raises(VideoRemuxError, match="start_s must be a number"):
        remux_segments([(mp4, "0", None)], tmp_path / "bad.mp4")
    with pytest.raises(VideoRemuxError, match=r"expected \(path, start_s, end_s\)"):
        remux_segments([(mp4, 0.0)], tmp_path / "bad.mp4")
    with pytest.raises(VideoRemuxError, match="no frame"):
        remux_segments([(mp4, 0.0, 0.01), (mp4, 9.0, None)], tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


# -- bad input -----------------------------------------------------------------------------------


def test_bad_episode_indices(tmp_path):
    ds = source("fps15_types")
    out = tmp_path / "out"
    with pytest.raises(DatasetIndexError, match=r"invalid episode indices \[7\]"):
        delete_episodes(ds, [0, 7], output_dir=out)
    with pytest.raises(DatasetArgumentError, match="more than once"):
        delete_episodes(ds, [1, 1], output_dir=out)
    with pytest.raises(DatasetArgumentError, match="Cannot delete all episodes"):
        delete_episodes(ds, [0, 1, 2], output_dir=out)
    with pytest.raises(DatasetArgumentError, match="No episodes"):
        delete_episodes(ds, [], output_dir=out)
    with pytest.raises(DatasetArgumentError, match="multiple splits"):
        split_dataset(ds, {"a": [0, 1], "b": [1, 2]}, output_dir=out)
    with pytest.raises(DatasetIndexError):
        split_dataset(ds, {"a": [0, 3]}, output_dir=out)
    with pytest.raises(DatasetArgumentError, match="sum to <= 1.0"):
        split_dataset(ds, {"a": 0.8, "b": 0.5}, output_dir=out)
    assert not out.exists()


def test_merge_mismatches_name_the_key(tmp_path):
    with pytest.raises(DatasetArgumentError, match="fps is 50"):
        merge_datasets([source("two_cams_fps10"), source("fps50_multifile")], "m", output_dir=tmp_path / "m")
    extra = tmp_path / "extra"
    shutil.copytree(SOURCES / "h264_fps30", extra)
    info = json.loads((extra / "meta" / "info.json").read_text())
    info["features"]["reward"] = {"dtype": "float32", "shape": [1], "names": None}
    (extra / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    with pytest.raises(DatasetArgumentError, match=r"features differ .*only in it: \['reward'\]"):
        merge_datasets([source("h264_fps30"), extra], "m", output_dir=tmp_path / "m")
    robot = tmp_path / "robot"
    shutil.copytree(SOURCES / "h264_fps30", robot)
    info = json.loads((robot / "meta" / "info.json").read_text())
    info["robot_type"] = "other_arm"
    (robot / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    with pytest.raises(DatasetArgumentError, match="robot_type is 'other_arm'"):
        merge_datasets([source("h264_fps30"), robot], "m", output_dir=tmp_path / "m")
    shape = tmp_path / "shape"
    shutil.copytree(SOURCES / "h264_fps30", shape)
    info = json.loads((shape / "meta" / "info.json").read_text())
    info["features"]["action"]["names"] = ["a", "b", "c", "d", "e", "f"][
        : len(info["features"]["action"]["names"] or [])
    ] or ["x"]
    (shape / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    with pytest.raises(DatasetArgumentError, match="feature 'action'"):
        merge_datasets([source("h264_fps30"), shape], "m", output_dir=tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_remove_feature_bad_names(tmp_path):
    ds = source("two_cams_fps10")
    with pytest.raises(DatasetArgumentError, match="'nope' not found"):
        remove_feature(ds, "nope", output_dir=tmp_path / "out")
    with pytest.raises(DatasetArgumentError, match="required features"):
        remove_feature(ds, ["action", "index"], output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_output_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("mine")
    with pytest.raises(DatasetExistsError):
        delete_episodes(source("fps15_types"), [0], output_dir=out)
    assert (out / "keep").read_text() == "mine" and len(list(out.iterdir())) == 1


@pytest.mark.parametrize(
    "damaged", ["data/chunk-000/file-000.parquet", "videos/observation.images.front/chunk-000/file-000.mp4"]
)
def test_corrupt_source_file_is_a_dataset_error(tmp_path, damaged):
    broken = tmp_path / "broken"
    shutil.copytree(SOURCES / "two_cams_fps10", broken)
    path = broken / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    out = tmp_path / "out"
    # The source given by its root: LeRobotDataset itself would refuse to open the damaged dataset.
    with pytest.raises(DatasetError, match=path.name):
        delete_episodes(broken, [1], output_dir=out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_a_range_off_keyframes_is_reencoded_with_the_datasets_settings(tmp_path):
    # One GOP for the whole file: episode 1 (frames 10..15) does not start on a keyframe, so deleting
    # episode 0 cannot stream-copy it; it is decoded and re-encoded with info.json's h264 settings.
    root = tmp_path / "one_gop"
    shutil.copytree(SOURCES / "h264_fps30", root)
    mp4 = root / "videos" / "observation.images.top" / "chunk-000" / "file-000.mp4"
    original_frames = VideoDecoder(str(mp4)).decode(np.arange(16) / 30)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(mp4),
            "-c:v",
            "libx264",
            "-g",
            "100",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(mp4) + ".new.mp4",
        ],
        check=True,
    )
    Path(str(mp4) + ".new.mp4").replace(mp4)
    with pytest.raises(VideoRemuxError, match="not a keyframe"):
        remux_segments([(mp4, 10 / 30, None)], tmp_path / "direct.mp4")
    kept = delete_episodes(root, [0], output_dir=tmp_path / "out")
    assert kept.meta.episodes[0]["videos/observation.images.top/from_timestamp"] == 0.0
    out = tmp_path / "out" / "videos" / "observation.images.top" / "chunk-000" / "file-000.mp4"
    assert VideoDecoder(str(out)).info.codec == "h264"
    decoded = VideoDecoder(str(out)).decode(np.arange(6) / 30)
    assert np.abs(decoded.astype(int) - original_frames[10:].astype(int)).mean() < 4
    assert len(kept) == 6 and kept[5]["frame_index"].item() == 5


def test_command_line(tmp_path, capsys):
    from dexloop.cli.dataset import main

    src = str(SOURCES / "two_cams_fps10")
    assert (
        main(["delete-episodes", src, "--episode-indices", "0", "2", "--new-root", str(tmp_path / "del")])
        == 0
    )
    assert "2 episodes, 6 frames" in capsys.readouterr().out
    assert main(["split", src, "--splits", "a=0,1", "b=2,3", "--new-root", str(tmp_path / "split")]) == 0
    assert main(["split", src, "--splits", "train=0.5", "val=0.5", "--new-root", str(tmp_path / "frac")]) == 0
    assert LeRobotDataset("x", root=tmp_path / "frac" / "val").meta.total_episodes == 2
    roots = [str(tmp_path / "split" / "b"), str(tmp_path / "split" / "a")]
    assert main(["merge", "--roots", *roots, "--new-root", str(tmp_path / "merged")]) == 0
    merged = LeRobotDataset("x", root=tmp_path / "merged")
    assert merged.repo_id == "x" and merged.meta.total_frames == 25
    assert json.loads((tmp_path / "merged" / "meta" / "info.json").read_text())["total_episodes"] == 4
    assert main(["remove-feature", src, "--feature-names", "action", "--new-root", str(tmp_path / "rm")]) == 0
    assert "action" not in LeRobotDataset("x", root=tmp_path / "rm").meta.features
    capsys.readouterr()
    assert main(["remove-feature", src, "--feature-names", "index", "--new-root", str(tmp_path / "rm2")]) == 1
    assert "Cannot remove required features" in capsys.readouterr().err
    assert main(["split", src, "--splits", "a=x", "--new-root", str(tmp_path / "bad")]) == 1
    assert not (tmp_path / "rm2").exists() and not (tmp_path / "bad").exists()


def test_data_file_disagreeing_with_its_metadata_is_a_dataset_error(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(SOURCES / "two_cams_fps10", broken)
    path = broken / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 2), path)  # the last episode loses two rows
    with pytest.raises(DatasetError, match="episode 3 has 3 rows where meta/episodes says 5"):
        delete_episodes(broken, [0], output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
