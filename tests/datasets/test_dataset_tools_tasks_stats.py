"""``modify_tasks`` and ``recompute_stats`` edit datasets in place as LeRobot 0.6.1's tools do.

References: tests/data/lerobot_tasks_stats holds what LeRobot's own ``modify_tasks`` and
``recompute_stats`` (relative actions) made of copies of the datasets of tests/data/lerobot (made by
tools/lerobot_reference/make_tasks_stats_reference.py); the stats LeRobot's recorder wrote into those
datasets are the reference for recomputed stats. An edit that fails must leave the dataset as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import DATA, LEROBOT_DATA, LEROBOT_V21_DATA, tree_digest, writable_copy

from dexloop.cli.dataset import main as dataset_cli
from dexloop.datasets.compute_stats import estimate_num_samples
from dexloop.datasets.tools import modify_tasks, recompute_stats
from dexloop.datasets.tools import tasks as tasks_module
from dexloop.errors import DatasetArgumentError, DatasetError

REFERENCES = DATA / "lerobot_tasks_stats"
DATASETS = sorted(p.name for p in LEROBOT_DATA.iterdir() if (p / "meta/info.json").is_file())


def read_all(root: Path, pattern: str, columns=None) -> pa.Table:
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in sorted(root.glob(pattern))])


def reference(case: str) -> dict:
    return json.loads((REFERENCES / f"{case}.json").read_text())


def assert_left_alone(root: Path, before: dict[str, str]) -> None:
    assert tree_digest(root) == before
    assert sorted(p.name for p in root.parent.iterdir()) == [root.name], "no staging folder left"


# -- modify_tasks --------------------------------------------------------------------------------

TASK_CASES = sorted(p.stem for p in REFERENCES.glob("*__modify_tasks_*.json"))
RELATIVE_CASES = sorted(p.stem for p in REFERENCES.glob("*__recompute_stats_*.json"))


def test_the_references_are_there() -> None:
    assert len(TASK_CASES) == 2 and len(RELATIVE_CASES) == 2, f"references missing in {REFERENCES}"


@pytest.mark.parametrize("case", TASK_CASES)
def test_modify_tasks_gives_lerobots_tasks(tmp_path, case) -> None:
    expected = reference(case)
    root = writable_copy(LEROBOT_DATA / expected["dataset"], tmp_path)
    before = tree_digest(root)
    arguments = dict(expected["arguments"])
    if "episode_tasks" in arguments:
        arguments["episode_tasks"] = {int(e): t for e, t in arguments["episode_tasks"].items()}
    dataset = modify_tasks(root, **arguments)

    tasks = pd_tasks(root)
    assert tasks == list(zip(expected["tasks"], expected["task_index"], strict=True))
    assert json.loads((root / "meta/info.json").read_text())["total_tasks"] == expected["total_tasks"]
    assert (
        read_all(root, "meta/episodes/*/*.parquet").column("tasks").to_pylist() == expected["episode_tasks"]
    )
    assert read_all(root, "data/*/*.parquet").column("task_index").to_pylist() == expected["data_task_index"]
    # Items carry the new task strings.
    lengths = dataset.meta.episodes["length"]
    for episode, first in enumerate(np.cumsum([0, *lengths[:-1]])):
        assert dataset[int(first)]["task"] == expected["episode_tasks"][episode][0]

    after = tree_digest(root)
    for relative, digest in before.items():
        if relative.endswith(".mp4"):
            assert after[relative] == digest, f"{relative} must not change"
    for path in sorted(root.glob("data/*/*.parquet")):
        original = LEROBOT_DATA / expected["dataset"] / path.relative_to(root)
        ours, theirs = pq.ParquetFile(path), pq.ParquetFile(original)
        assert ours.schema_arrow.equals(theirs.schema_arrow, check_metadata=True), "schema and metadata kept"
        assert ours.metadata.num_row_groups == theirs.metadata.num_row_groups, (
            "one row group per episode kept"
        )
        assert ours.read().drop_columns(["task_index"]).equals(theirs.read().drop_columns(["task_index"]))
    # task_index stats follow the new numbering, per episode and in stats.json.
    episodes = read_all(root, "meta/episodes/*/*.parquet")
    new_index = {task: index for task, index in tasks}
    for row, task in zip(episodes.to_pylist(), expected["episode_tasks"], strict=True):
        for stat in ("min", "max"):
            assert row[f"stats/task_index/{stat}"] == [new_index[task[0]]]
        assert row["stats/task_index/std"] == [0.0]
    stats = json.loads((root / "meta/stats.json").read_text())["task_index"]
    data_index = np.array(expected["data_task_index"], dtype=np.float64)
    assert stats["min"] == [data_index.min()] and stats["max"] == [data_index.max()]
    np.testing.assert_allclose(stats["mean"], [data_index.mean()], rtol=1e-12)
    np.testing.assert_allclose(stats["std"], [data_index.std()], rtol=1e-9)


def pd_tasks(root: Path) -> list[tuple[str, int]]:
    import pandas as pd

    frame = pd.read_parquet(root / "meta/tasks.parquet")
    return [(str(task), int(index)) for task, index in zip(frame.index, frame["task_index"], strict=True)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "at least one"),
        ({"new_task": ""}, "at least one"),
        ({"episode_tasks": {7: "x"}}, "Invalid episode indices"),
        ({"episode_tasks": {"0": "x"}}, "integers"),
        ({"episode_tasks": {0: 3}}, "non-empty strings"),
        ({"task_replacements": {"no such task": "x"}}, "unknown tasks"),
    ],
)
def test_modify_tasks_refuses_bad_arguments(tmp_path, arguments, message) -> None:
    root = writable_copy(LEROBOT_DATA / "public_0", tmp_path)
    before = tree_digest(root)
    with pytest.raises(DatasetArgumentError, match=message):
        modify_tasks(root, **arguments)
    assert_left_alone(root, before)


def test_modify_tasks_interrupted_leaves_the_dataset_as_it_was(tmp_path, monkeypatch) -> None:
    root = writable_copy(LEROBOT_DATA / "two_cams_fps10", tmp_path)
    before = tree_digest(root)

    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    # After the data and episode files were rewritten in the staging folder.
    monkeypatch.setattr(tasks_module, "write_tasks", fail)
    with pytest.raises(OSError, match="No space"):
        modify_tasks(root, new_task="anything")
    assert_left_alone(root, before)


def test_modify_tasks_refuses_a_v21_dataset(tmp_path) -> None:
    root = writable_copy(LEROBOT_V21_DATA / "v21_0", tmp_path)
    before = tree_digest(root)
    with pytest.raises(DatasetError, match="v2.1"):
        modify_tasks(root, new_task="x")
    assert_left_alone(root, before)


# -- recompute_stats -----------------------------------------------------------------------------


def visual(root: Path) -> set[str]:
    features = json.loads((root / "meta/info.json").read_text())["features"]
    return {k for k, f in features.items() if f["dtype"] in ("image", "video")}


def damage_stats(root: Path, keep: set[str]) -> None:
    """Zeroes the stats of every feature not in `keep`, in stats.json and in the episodes files."""
    stats = json.loads((root / "meta/stats.json").read_text())
    for feature, values in stats.items():
        if feature not in keep:
            stats[feature] = {name: np.zeros_like(np.asarray(v)).tolist() for name, v in values.items()}
    (root / "meta/stats.json").write_text(json.dumps(stats))
    for path in root.glob("meta/episodes/*/*.parquet"):
        table = pq.read_table(path)
        for index, name in enumerate(table.column_names):
            if name.startswith("stats/") and name.removeprefix("stats/").rpartition("/")[0] not in keep:
                zeros = [np.zeros_like(np.asarray(v)).tolist() for v in table.column(name).to_pylist()]
                table = table.set_column(
                    index, table.schema.field(name), pa.array(zeros, table.schema.field(name).type)
                )
        pq.write_table(table, path)


def assert_stats_close(ours: dict, theirs: dict, tolerance: float, skip: set[str] = frozenset()) -> None:
    assert ours.keys() == theirs.keys()
    for feature, values in theirs.items():
        if feature in skip:
            continue
        assert ours[feature].keys() == values.keys(), feature
        for stat, value in values.items():
            np.testing.assert_allclose(
                ours[feature][stat], value, rtol=0, atol=tolerance, err_msg=f"{feature} {stat}"
            )


def episode_stats(root: Path) -> dict[str, list]:
    table = read_all(root, "meta/episodes/*/*.parquet")
    return {name: table.column(name).to_pylist() for name in table.column_names if name.startswith("stats/")}


@pytest.mark.parametrize("name", DATASETS)
def test_recompute_stats_restores_the_recorders_stats(tmp_path, name) -> None:
    root = writable_copy(LEROBOT_DATA / name, tmp_path)
    damage_stats(root, keep=visual(root))
    assert json.loads((root / "meta/stats.json").read_text()) != json.loads(
        (LEROBOT_DATA / name / "meta/stats.json").read_text()
    )
    dataset = recompute_stats(root)  # skip_image_video=True: their stats are kept
    original = LEROBOT_DATA / name
    assert_stats_close(
        json.loads((root / "meta/stats.json").read_text()),
        json.loads((original / "meta/stats.json").read_text()),
        1e-6,
    )
    ours, theirs = episode_stats(root), episode_stats(original)
    assert ours.keys() == theirs.keys()
    for column, values in theirs.items():
        np.testing.assert_allclose(
            np.array(ours[column], float), np.array(values, float), rtol=0, atol=1e-6, err_msg=column
        )
    episodes = sorted(root.glob("meta/episodes/*/*.parquet"))
    assert [pq.read_schema(p) for p in episodes] == [
        pq.read_schema(original / p.relative_to(root)) for p in episodes
    ]
    assert set(dataset.meta.stats) == set(json.loads((original / "meta/stats.json").read_text()))


def test_image_stats_are_recomputed_exactly(tmp_path) -> None:
    root = writable_copy(LEROBOT_DATA / "images_fps10", tmp_path)
    damage_stats(root, keep=set())
    recompute_stats(root, skip_image_video=False)
    original = LEROBOT_DATA / "images_fps10"
    assert_stats_close(
        json.loads((root / "meta/stats.json").read_text()),
        json.loads((original / "meta/stats.json").read_text()),
        1e-9,
    )


@pytest.mark.parametrize("name", ["public_0", "two_cams_fps10"])
def test_video_stats_are_recomputed_from_the_sampled_decoded_frames(tmp_path, name) -> None:
    root = writable_copy(LEROBOT_DATA / name, tmp_path)
    damage_stats(root, keep=set())
    recompute_stats(root, skip_image_video=False)
    original = LEROBOT_DATA / name
    ours, theirs = (
        json.loads((root / "meta/stats.json").read_text()),
        json.loads((original / "meta/stats.json").read_text()),
    )
    cameras = visual(root)
    assert_stats_close(ours, theirs, 1e-6, skip=cameras)
    lengths = read_all(root, "meta/episodes/*/*.parquet").column("length").to_pylist()
    for camera in cameras:
        # The recorder took these stats from the frames before encoding; the decoded frames differ by
        # the encoder's loss only, and the number of sampled frames is LeRobot's.
        assert (
            ours[camera]["count"]
            == theirs[camera]["count"]
            == [sum(estimate_num_samples(n) for n in lengths)]
        )
        for stat in ("mean", "std", "q50"):
            np.testing.assert_allclose(
                ours[camera][stat], theirs[camera][stat], atol=0.02, err_msg=f"{camera} {stat}"
            )
        assert np.array(ours[camera]["mean"]).shape == (3, 1, 1)
        per_episode = episode_stats(root)[f"stats/{camera}/count"]
        assert per_episode == [[estimate_num_samples(n)] for n in lengths]


@pytest.mark.parametrize("case", RELATIVE_CASES)
def test_relative_action_stats_equal_lerobots(tmp_path, case) -> None:
    expected = reference(case)
    root = writable_copy(LEROBOT_DATA / expected["dataset"], tmp_path)
    recompute_stats(root, **expected["arguments"])
    ours = json.loads((root / "meta/stats.json").read_text())
    assert_stats_close(ours, expected["stats"], 1e-9)
    assert (
        ours["action"]
        != json.loads((LEROBOT_DATA / expected["dataset"] / "meta/stats.json").read_text())["action"]
    )


def test_recompute_stats_refuses_bad_input_and_changes_nothing(tmp_path) -> None:
    root = writable_copy(LEROBOT_DATA / "public_0", tmp_path)
    mp4 = sorted(root.glob("videos/*/*/*.mp4"))[0]
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 3])
    before = tree_digest(root)
    with pytest.raises(DatasetError, match=mp4.name):
        recompute_stats(root, skip_image_video=False)
    assert_left_alone(root, before)
    with pytest.raises(DatasetArgumentError, match="chunk"):
        recompute_stats(root, relative_action=True, chunk_size=10_000)
    with pytest.raises(DatasetArgumentError, match="chunk_size"):
        recompute_stats(root, relative_action=True, chunk_size=0)
    assert_left_alone(root, before)
    data = sorted(root.glob("data/*/*.parquet"))[0]
    data.write_bytes(data.read_bytes()[:-64])
    before = tree_digest(root)
    with pytest.raises(DatasetError, match=data.name):
        recompute_stats(root)
    assert_left_alone(root, before)


# -- command line --------------------------------------------------------------------------------


def test_command_line(tmp_path, capsys) -> None:
    root = writable_copy(LEROBOT_DATA / "public_0", tmp_path)
    assert (
        dataset_cli(
            ["modify-tasks", str(root), "--episode-tasks", "0=first one", "2=third", "--new-task", "rest"]
        )
        == 0
    )
    assert pd_tasks(root) == [("first one", 0), ("rest", 1), ("third", 2)]
    assert dataset_cli(["modify-tasks", str(root), "--episode-tasks", "x=first"]) == 1
    assert "not an episode index" in capsys.readouterr().err
    assert dataset_cli(["modify-tasks", str(root)]) == 1
    damage_stats(root, keep=visual(root))
    assert dataset_cli(["recompute-stats", str(root)]) == 0
    assert_stats_close(
        json.loads((root / "meta/stats.json").read_text()),
        {
            **json.loads((LEROBOT_DATA / "public_0/meta/stats.json").read_text()),
            "task_index": json.loads((root / "meta/stats.json").read_text())["task_index"],
        },
        1e-6,
    )
    v21 = writable_copy(LEROBOT_V21_DATA / "v21_0", tmp_path / "v21")
    assert dataset_cli(["convert", str(v21), "--new-root", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out/meta/info.json").read_text())["codebase_version"] == "v3.0"
    assert dataset_cli(["convert", str(v21), "--new-root", str(tmp_path / "out")]) == 1
    assert "already exists" in capsys.readouterr().err
