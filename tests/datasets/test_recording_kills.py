"""A recording killed with SIGKILL at any moment keeps every episode whose save_episode() returned.

Each round starts a recording child process on the same dataset (``create`` the first time, then
``resume``, as a user re-running a recording would), lets it record for a random time, and kills it:
while it opens the dataset, mid-episode, inside save_episode, or inside finalize. The child prints a
line once each save_episode() has returned. After the kill the dataset is repaired (by the command
line, by ``repair()``, or by the next child's ``resume``) and must hold exactly the episodes saved so
far, each one intact: its length, its state values and its camera frames.

The CI run kills 8 times; ``DEXLOOP_KILL_CAMPAIGN=50`` (or more) runs a longer campaign by hand.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dexloop.datasets import LeRobotDataset
from dexloop.datasets.recording_journal import has_journal, repair

from reference_recordings import paint_frame

HEIGHT, WIDTH = 64, 80
KILLS = int(os.environ.get("DEXLOOP_KILL_CAMPAIGN", "8"))


def episode_length(episode: int) -> int:
    return 2 + (episode * 7) % 9


CHILD = textwrap.dedent(
    f"""
    import sys
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from reference_recordings import paint_frame
    from test_recording_kills import episode_length, FEATURES
    from dexloop.datasets import LeRobotDataset

    root = Path(sys.argv[1])
    episodes = int(sys.argv[2])
    if (root / "meta" / "info.json").exists():
        dataset = LeRobotDataset.resume("dexloop/kills", root=root)
    else:
        dataset = LeRobotDataset.create("dexloop/kills", 10, FEATURES, root=root, video_files_size_in_mb=0.02)
    print("ready", flush=True)
    for _ in range(episodes):
        episode = dataset.meta.total_episodes
        for f in range(episode_length(episode)):
            dataset.add_frame({{
                "observation.state": np.array([episode, f], dtype=np.float32),
                "observation.images.cam": paint_frame(episode, f, {HEIGHT}, {WIDTH}),
                "task": f"task {{episode % 3}}",
            }})
        dataset.save_episode()
        print("saved", episode, flush=True)
    if sys.argv[3:] == ["hold"]:  # a recording that stays alive, its episodes saved, not finalized
        print("holding", flush=True)
        import time
        time.sleep(120)
    dataset.finalize()
    print("finalized", flush=True)
    """
)

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (2,), "names": ["episode", "frame"]},
    "observation.images.cam": {
        "dtype": "video",
        "shape": (HEIGHT, WIDTH, 3),
        "names": ["height", "width", "channels"],
    },
}


def check_dataset(root: Path, episodes: int, new_from: int) -> None:
    """The dataset holds `episodes` intact episodes, 0..episodes-1: every row's state (read from the
    parquet files), and the first and last camera frame of the episodes from `new_from` on."""
    if episodes == 0:
        return
    dataset = LeRobotDataset("dexloop/kills", root=root, return_uint8=True)
    assert dataset.num_episodes == episodes
    lengths = [episode_length(e) for e in range(episodes)]
    assert len(dataset) == sum(lengths)
    files = sorted(root.glob("data/*/*.parquet"))
    state = np.concatenate(
        [np.stack(pq.read_table(f).column("observation.state").to_numpy(zero_copy_only=False)) for f in files]
    )
    expected = np.array([[e, f] for e in range(episodes) for f in range(lengths[e])], dtype=np.float32)
    np.testing.assert_array_equal(state, expected)
    first = sum(lengths[:new_from])
    for episode in range(new_from, episodes):
        length = lengths[episode]
        for frame in (0, length - 1):
            image = dataset[first + frame]["observation.images.cam"].numpy().astype(np.int16)
            candidates = [
                (e, f)
                for e in range(max(0, episode - 1), min(episodes, episode + 2))
                for f in range(lengths[e])
            ]
            errors = [
                np.abs(paint_frame(e, f, HEIGHT, WIDTH).transpose(2, 0, 1) - image).mean()
                for e, f in candidates
            ]
            assert candidates[int(np.argmin(errors))] == (episode, frame), f"episode {episode} frame {frame}"
        first += length


@pytest.mark.timeout(60 + 30 * KILLS)
def test_no_saved_episode_is_lost_to_sigkill(tmp_path) -> None:
    root = tmp_path / "kills"
    rng = random.Random(int(os.environ.get("DEXLOOP_KILL_SEED", "7")))
    saved = 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    for round_number in range(KILLS):
        # A child records 30 episodes in about 0.7 s, then finalizes in about 0.2 s (on this
        # machine): kills within 0.95 s of "ready" land mid-episode, in save_episode or in finalize.
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        lines: list[str] = []
        if rng.random() < 0.15:
            time.sleep(rng.uniform(0.0, 2.0))  # maybe while it creates, resumes or repairs
        else:
            lines.append(child.stdout.readline().strip())
            time.sleep(rng.uniform(0.0, 0.95))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        assert child.returncode in (0, -signal.SIGKILL), f"the recording failed by itself:\n{err[-3000:]}"
        lines += out.split("\n")
        printed = sum(1 for line in lines if line.startswith("saved"))
        # Repaired by the command line, by repair(), or left to the next child's resume().
        how = round_number % 3
        if how == 0 and has_journal(root):
            subprocess.run(
                [sys.executable, "-m", "dexloop.cli.main", "dataset", "repair", str(root)], check=True
            )
        elif how == 1:
            repair(root)
        if has_journal(root):
            repair(root)
        recovered = LeRobotDataset("dexloop/kills", root=root).num_episodes if saved + printed else 0
        # An episode whose save_episode() returned just before the kill may not have been printed yet.
        assert saved + printed <= recovered <= saved + printed + 1, (round_number, saved, printed, recovered)
        if "finalized" in lines:
            stage = "after finalize"
        elif printed == 30:
            stage = "finalize"
        else:
            stage = "recording" if "ready" in lines else "opening"
        print(
            f"kill {round_number}: while {stage}, {printed} saves printed, {recovered - saved} episodes kept"
        )
        check_dataset(root, recovered, saved)
        saved = recovered
    assert saved > 0


@pytest.mark.parametrize("where", ["create", "resume"])
def test_a_live_recording_cannot_be_repaired_under_it(tmp_path, where) -> None:
    from dexloop.errors import DatasetUnfinishedError

    root = tmp_path / "live"
    if where == "resume":
        with LeRobotDataset.create("dexloop/live", 10, FEATURES, root=root) as dataset:
            dataset.add_frame(
                {
                    "observation.state": np.zeros(2, np.float32),
                    "observation.images.cam": paint_frame(0, 0, HEIGHT, WIDTH),
                    "task": "t",
                }
            )
            dataset.save_episode()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), "1", "hold"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    try:
        lines = [child.stdout.readline().strip() for _ in range(3)]
        assert lines[0] == "ready" and lines[2] == "holding", lines
        with pytest.raises(DatasetUnfinishedError, match="another process is recording"):
            repair(root)
        with pytest.raises(DatasetUnfinishedError, match="not finalized"):
            LeRobotDataset("dexloop/live", root=root)
        with pytest.raises(DatasetUnfinishedError):
            LeRobotDataset.resume("dexloop/live", root=root)
    finally:
        child.kill()
        child.wait()
    repair(root)  # the recording is dead now: its saved episode is kept
    assert LeRobotDataset("dexloop/live", root=root).num_episodes == (2 if where == "resume" else 1)


DRAINING_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    import numpy as np
    sys.path[:0] = [sys.argv[2], str(Path(sys.argv[2]).parent)]
    from synth import paint_frame
    from test_recording_kills import DRAINING_FEATURES, DRAINING_LENGTHS
    from dexloop.datasets import LeRobotDataset

    dataset = LeRobotDataset.create("dexloop/draining", 10, DRAINING_FEATURES, root=sys.argv[1])
    for episode, length in enumerate(DRAINING_LENGTHS):
        for f in range(length):
            dataset.add_frame({
                "observation.state": np.array([episode, f], dtype=np.float32),
                "observation.images.top": paint_frame(episode, f, 240, 320),
                "observation.images.wrist": paint_frame(episode, f, 96, 128),
                "task": "push",
            })
            time.sleep(0.01)  # paced: the codecs put out some packets and hold the others
        dataset.save_episode()
    os.kill(os.getpid(), signal.SIGKILL)  # while the codecs drain the last episode
    """
)
DRAINING_LENGTHS = (12, 25)
DRAINING_FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (2,), "names": ["episode", "frame"]},
    "observation.images.top": {
        "dtype": "video",
        "shape": (240, 320, 3),
        "names": ["height", "width", "channels"],
    },
    "observation.images.wrist": {
        "dtype": "video",
        "shape": (96, 128, 3),
        "names": ["height", "width", "channels"],
    },
}


def test_an_episode_saved_while_its_codecs_drain_survives_a_kill(tmp_path) -> None:
    """save_episode returns before the codecs have put out the episode's last frames; killed right
    then, the recording keeps the episode in its progress files, and the repair encodes it."""
    progress_files = {f"observation.images.{camera}.episode-000001.frames" for camera in ("top", "wrist")}
    for attempt in range(3):  # a kill that came after the drains (a starved child) is tried again
        root = tmp_path / f"draining-{attempt}"
        result = subprocess.run(
            [sys.executable, "-c", DRAINING_CHILD, str(root), str(Path(__file__).parent)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": f"{Path(__file__).parent}:{Path(__file__).parents[1]}"},
        )
        assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
        if progress_files <= {p.name for p in (root / ".recording" / "videos").iterdir()}:
            break
    else:
        pytest.fail("every kill came after the codecs had drained")
    repair(root)
    assert not has_journal(root)
    dataset = LeRobotDataset("dexloop/draining", root=root, return_uint8=True)
    assert dataset.num_episodes == 2 and len(dataset) == sum(DRAINING_LENGTHS)
    from synth import closest_painted_frame  # tests/: not on the path of the children above

    candidates = [(e, f) for e, length in enumerate(DRAINING_LENGTHS) for f in range(length)]
    for index, expected in enumerate(candidates):
        item = dataset[index]
        assert item["observation.state"].tolist() == list(expected)
        for camera in ("top", "wrist"):
            image = item[f"observation.images.{camera}"].numpy()
            assert closest_painted_frame(image, candidates) == expected, (camera, expected)
