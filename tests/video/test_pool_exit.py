"""No decoding thread outlives the interpreter.

A process that still holds a DecoderPool at exit (a dataset in a module global, in a reference cycle)
must not keep its threads running into process teardown, where the C++ runtime aborts ("terminate
called without an active exception"). dexloop joins them from an atexit hook; these tests run such
processes and check their threads and exit status.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
from support import LEROBOT_DATA

from dexloop.video import DecoderPool

FRONT = LEROBOT_DATA / "two_cams_fps10/videos/observation.images.front/chunk-000/file-000.mp4"


def decode(pool: DecoderPool, times: list[float]) -> np.ndarray:
    out = np.zeros((len(times), 3, 48, 64), dtype=np.uint8)
    count = len(times)
    pool.decode(
        [str(FRONT)],
        np.zeros(count, np.int32),
        np.asarray(times, np.float64),
        np.zeros(count, np.int32),
        np.arange(count, dtype=np.int64),
        [out],
    )
    return out


def test_close_joins_and_the_pool_restarts_on_the_next_decode() -> None:
    pool = DecoderPool(3)
    first = decode(pool, [0.0, 0.3, 0.6])
    pool.close()
    pool.close()  # closing a closed pool does nothing
    np.testing.assert_array_equal(decode(pool, [0.0, 0.3, 0.6]), first)
    assert pool.frames_decoded >= 6


def thread_count_script(body: str) -> str:
    # atexit runs hooks last-registered first: this one, registered before dexloop is imported, runs
    # after dexloop's and counts the process's threads then.
    return textwrap.dedent(
        """
        import atexit, sys
        def threads():
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
        atexit.register(lambda: print("at exit", threads(), flush=True))
        import datasets  # as in every LeRobot process
        from dexloop.datasets import LeRobotDataset
        """
    ) + textwrap.dedent(body)


def run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)


def test_threads_of_datasets_left_alive_are_joined_at_exit() -> None:
    script = thread_count_script(
        f"""
        DATASET = LeRobotDataset("dexloop/two_cams_fps10", root={str(LEROBOT_DATA / "two_cams_fps10")!r},
                                 decode_threads=4, delta_timestamps={{"observation.images.front": [-0.1, 0.0]}})
        before = threads()  # Arrow's own threads, started by reading the parquet files, included
        DATASET.__getitems__([0, 5, 9, 20])  # starts the decoder pool
        cycle = {{"dataset": DATASET}}
        cycle["self"] = cycle
        during = threads()
        print("threads", before, during, flush=True)
        """
    )
    for _ in range(3):
        result = run(script)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "terminate called" not in result.stderr
        before, during = (int(n) for n in result.stdout.split("threads ")[1].split()[:2])
        at_exit = int(result.stdout.split("at exit ")[1].split()[0])
        assert during >= before + 3  # the pool's three extra threads ran (torch may add its own)...
        assert at_exit == during - 3  # ...and were joined before the interpreter finalized
