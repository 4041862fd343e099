"""``dexloop dataset visualize``: the episode pages work in a real browser, and the PNG plots hold
every dimension.

The browser checks drive Debian's headless Chromium (installed by tools/dev.sh) through the DevTools
protocol over ``--remote-debugging-pipe``: JSON messages on file descriptors 3 and 4, so no port,
no websocket package and no browser download. The page is opened as a file, as a user opens it.
The dataset is recorded with dexloop's writer from painted frames (tests/synth.py), its two
episodes in one mp4 per camera, so that episode 1 starts at from_timestamp 1.2 s inside the file
and a frame shown by the page can be identified by its pixels.

Every wait is on an event or a condition with a generous deadline (a loaded 2-core machine decodes
slowly); nothing asserts how long anything took.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from support import LEROBOT_DATA

from dexloop.cli import dataset as dataset_cli
from dexloop.datasets import LeRobotDataset, LeRobotDatasetMetadata
from dexloop.datasets.tools import visualize_dataset
from dexloop.datasets.tools.visualize import plot_episode, read_episode
from dexloop.errors import DatasetArgumentError, DatasetError, DatasetIndexError, DatasetNotFoundError
from dexloop.video.encoder import RGBEncoderConfig

from reference_recordings import DATASETS
from synth import assert_painted_frame, paint_frame

FPS = 10
LENGTHS = (12, 8)
FRONT = "observation.images.front"  # video
WRIST = "observation.images.wrist"  # image feature, PNG in the parquet file
FRONT_SIZE = (64, 96)  # Debian's SVT-AV1 wants frames of at least 64 px
WRIST_SIZE = (24, 32)
STATE_NAMES = ["shoulder", "elbow", "gripper"]
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (3,), "names": STATE_NAMES},
    "action": {"dtype": "float32", "shape": (2,), "names": None},
    "observation.grid": {"dtype": "float32", "shape": (2, 2), "names": None},
    FRONT: {"dtype": "video", "shape": (*FRONT_SIZE, 3), "names": ["height", "width", "channels"]},
    WRIST: {"dtype": "image", "shape": (*WRIST_SIZE, 3), "names": ["height", "width", "channels"]},
}
# Chromium as Debian builds it decodes both: AV1 (LeRobot's default) and H.264.
CODECS = {"av1": {"vcodec": "libsvtav1"}, "h264": {"vcodec": "h264", "pix_fmt": "yuv420p", "g": 2, "crf": 23}}


def state(episode: int, frame: int) -> np.ndarray:
    return np.array([episode + frame * 0.1, np.sin(frame), -frame], dtype=np.float32)


def record(root: Path, encoder: dict) -> Path:
    dataset = LeRobotDataset.create(
        "dexloop/viz", fps=FPS, features=FEATURES, root=root, rgb_encoder=RGBEncoderConfig(**encoder)
    )
    for episode, length in enumerate(LENGTHS):
        for frame in range(length):
            dataset.add_frame(
                {
                    "task": ["pick the cube", "place the cube"][episode],
                    "observation.state": state(episode, frame),
                    "action": np.array([frame, 2 * frame], dtype=np.float32),
                    "observation.grid": np.full((2, 2), episode - frame, dtype=np.float32),
                    FRONT: paint_frame(episode, frame, *FRONT_SIZE),
                    WRIST: paint_frame(episode, frame, *WRIST_SIZE),
                }
            )
        dataset.save_episode()
    dataset.finalize()
    return root


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    return record(tmp_path_factory.mktemp("viz") / "dataset", CODECS["av1"])


# -- pages and PNGs, without a browser --------------------------------------------------------------


def test_writes_pages_pngs_videos_and_images(dataset_root, tmp_path) -> None:
    out = tmp_path / "out"
    pages = visualize_dataset(dataset_root, output_dir=out, progress=False)
    assert pages == [out / "episode_000000.html", out / "episode_000001.html"]
    index = (out / "index.html").read_text()
    assert 'href="episode_000000.html"' in index and 'href="episode_000001.html"' in index
    for episode in range(2):
        assert (out / f"episode_{episode:06d}.png").is_file()
    # The one mp4 holding both episodes is in the output folder once, byte for byte.
    video = "videos/observation.images.front/chunk-000/file-000.mp4"
    assert (out / video).read_bytes() == (dataset_root / video).read_bytes()
    page = pages[1].read_text()
    assert f'src="{video}"' in page and 'data-from="1.2"' in page
    # Nothing is fetched from elsewhere: every src and href is a relative path.
    links = re.findall(r'(?:src|href)="([^"]*)"', page + index)
    assert links and not [link for link in links if re.match(r"[a-z]+:|/", link)]
    # Image features: the frames' PNG bytes exactly as the parquet file stores them.
    stored = pq.read_table(next(dataset_root.glob("data/*/*.parquet")), columns=[WRIST, "episode_index"])
    episode_1 = [row[WRIST]["bytes"] for row in stored.to_pylist() if row["episode_index"] == 1]
    written = sorted((out / "images" / WRIST / "episode_000001").iterdir())
    assert [path.read_bytes() for path in written] == episode_1


def test_selected_episodes_and_a_dataset_object(dataset_root, tmp_path) -> None:
    pages = visualize_dataset(dataset_root, [1], output_dir=tmp_path / "one", png=False, progress=False)
    assert pages == [tmp_path / "one/episode_000001.html"]
    assert not (tmp_path / "one/episode_000000.html").exists()
    assert not list((tmp_path / "one").glob("*.png"))
    # A LeRobotDataset opened on some episodes shows those.
    opened = LeRobotDataset("dexloop/viz", root=dataset_root, episodes=[0])
    pages = visualize_dataset(opened, output_dir=tmp_path / "opened", png=False, progress=False)
    assert pages == [tmp_path / "opened/episode_000000.html"]


def test_png_plot_has_a_subplot_per_feature_and_a_line_per_dimension(dataset_root, tmp_path) -> None:
    meta = LeRobotDatasetMetadata("dexloop/viz", root=dataset_root)
    figure = plot_episode(read_episode(meta, 1))
    axes = figure.get_axes()
    assert [ax.get_title(loc="left") for ax in axes] == ["observation.state", "action", "observation.grid"]
    labels = [[line.get_label() for line in ax.get_lines()] for ax in axes]
    assert labels == [
        STATE_NAMES,
        ["action[0]", "action[1]"],
        ["observation.grid[0,0]", "observation.grid[0,1]", "observation.grid[1,0]", "observation.grid[1,1]"],
    ]
    shoulder = axes[0].get_lines()[0]
    np.testing.assert_array_equal(shoulder.get_xdata(), np.arange(LENGTHS[1]))
    np.testing.assert_allclose(shoulder.get_ydata(), [state(1, f)[0] for f in range(LENGTHS[1])], rtol=1e-6)
    # The PNG on disk is that figure: 11 x (2.6 * 3 + 0.6) inches at 100 dpi.
    visualize_dataset(dataset_root, [1], output_dir=tmp_path, progress=False)
    header = (tmp_path / "episode_000001.png").read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1100, 840)


def test_bad_input_raises_typed_errors(dataset_root, tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DatasetIndexError, match="episode 2 is out of range for 2 episodes"):
        visualize_dataset(dataset_root, [0, 2], output_dir=out)
    with pytest.raises(DatasetArgumentError, match="integers"):
        visualize_dataset(dataset_root, ["1"], output_dir=out)
    with pytest.raises(DatasetArgumentError, match="no episodes"):
        visualize_dataset(dataset_root, [], output_dir=out)
    (tmp_path / "not_a_dataset").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"not_a_dataset: holds no LeRobot dataset"):
        visualize_dataset(tmp_path / "not_a_dataset", output_dir=out)
    with pytest.raises(DatasetError, match="inside the dataset"):
        visualize_dataset(dataset_root, output_dir=dataset_root / "viz")
    assert not out.exists() and not (dataset_root / "viz").exists()


def test_missing_video_file_is_named(dataset_root, tmp_path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(dataset_root, damaged)
    video = damaged / "videos" / FRONT / "chunk-000/file-000.mp4"
    video.unlink()
    with pytest.raises(DatasetError, match=f"{video}: the video of camera"):
        visualize_dataset(damaged, output_dir=tmp_path / "out", progress=False)


def test_command_line(dataset_root, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert (
        dataset_cli.main(["visualize", str(dataset_root), "--output-dir", str(out), "--episodes", "1"]) == 0
    )
    assert (out / "episode_000001.html").is_file() and (out / "episode_000001.png").is_file()
    assert not (out / "episode_000000.html").exists()
    printed = capsys.readouterr()
    assert "1 episode pages" in printed.out
    assert "visualize" in printed.err and "1/1" in printed.err  # tqdm's progress, on stderr
    assert dataset_cli.main(["visualize", str(tmp_path), "--output-dir", str(out)]) == 1
    assert "holds no LeRobot dataset" in capsys.readouterr().err
    assert (
        dataset_cli.main(["visualize", str(dataset_root), "--output-dir", str(out), "--episodes", "9"]) == 1
    )
    assert "episode 9 is out of range" in capsys.readouterr().err


# -- in Chromium ------------------------------------------------------------------------------------

# Deadline for one DevTools call; waits inside the page have their own, shorter ones (60 s).
CALL_TIMEOUT_S = 120
# Collects the page's uncaught errors from before its own scripts run.
ERROR_TRAP = """window.pageErrors = [];
addEventListener("error", (event) => pageErrors.push(String(event.message)));
addEventListener("unhandledrejection", (event) => pageErrors.push(String(event.reason)));"""


class Chromium:
    """Headless Chromium driven through the DevTools protocol on a pipe: requests are written to
    its fd 3 and answers read from its fd 4, as NUL-terminated JSON. No protocol domain's events are
    enabled but Page's (a handful per navigation), so answers are not buried in events."""

    def __init__(self, profile: Path):
        executable = shutil.which("chromium")
        if executable is None:
            pytest.fail(
                "Debian's chromium is needed (tools/dev.sh setup installs it: apt-get install chromium)"
            )
        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile.parent / "chromium.log"
        to_browser = os.pipe()
        from_browser = os.pipe()
        # Moved above 10 first, so that placing them at 3 and 4 in the child cannot overwrite each other.
        child_read = fcntl.fcntl(to_browser[0], fcntl.F_DUPFD_CLOEXEC, 10)
        child_write = fcntl.fcntl(from_browser[1], fcntl.F_DUPFD_CLOEXEC, 10)

        def place_pipes() -> None:
            os.dup2(child_read, 3)
            os.dup2(child_write, 4)

        try:
            with self.log.open("wb") as log:
                self.process = subprocess.Popen(
                    [
                        executable,
                        "--headless=new",
                        "--remote-debugging-pipe",
                        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
                        "--disable-gpu",
                        "--no-first-run",
                        "--disable-extensions",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--mute-audio",
                        f"--user-data-dir={profile}",
                        # Muted videos may play without a gesture anyway; this removes any doubt.
                        "--autoplay-policy=no-user-gesture-required",
                        # Lets the test read back a file:// video's pixels (a canvas would be tainted);
                        # the pages themselves need no such flag.
                        "--allow-file-access-from-files",
                        "about:blank",
                    ],
                    pass_fds=(3, 4),
                    preexec_fn=place_pipes,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,  # its own process group, so that close() ends all of it
                )
        finally:
            for fd in (to_browser[0], from_browser[1], child_read, child_write):
                os.close(fd)
        self._write, self._read = to_browser[1], from_browser[0]
        self._buffer = bytearray()
        self._id = 0
        self.session = ""

    def close(self) -> None:
        for fd in (self._write, self._read):
            os.close(fd)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)

    def _message(self, deadline: float) -> dict:
        scanned = 0
        while (end := self._buffer.find(b"\0", scanned)) < 0:
            scanned = len(self._buffer)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from Chromium; its log:\n{self._log_tail()}")
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited; its log:\n{self._log_tail()}")
                self._buffer += chunk
        message = json.loads(self._buffer[:end])
        del self._buffer[: end + 1]
        return message

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def call(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self._id += 1
        request = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            request["sessionId"] = self.session
        os.write(self._write, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < deadline:
            message = self._message(deadline)
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
        raise TimeoutError(f"{method}: no answer from Chromium within {CALL_TIMEOUT_S} s")

    def open(self, url: str) -> None:
        if not self.session:
            targets = self.call("Target.getTargets", session=False)["targetInfos"]
            page = next(target for target in targets if target["type"] == "page")
            attached = self.call(
                "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, False
            )
            self.session = attached["sessionId"]
            self.call("Page.enable")  # needed for the script below; its few events are skipped
            self.call("Page.addScriptToEvaluateOnNewDocument", {"source": ERROR_TRAP})
        self.call("Page.navigate", {"url": url})
        self.evaluate("waitFor(() => document.readyState === 'complete' && window.episodeViewer)")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (awaited if a promise), with the helpers below."""
        result = self.call(
            "Runtime.evaluate",
            {
                "expression": f"(async () => {{ {JS_HELPERS}; return await ({expression}); }})()",
                "awaitPromise": True,
                "returnByValue": True,
            },
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {json.dumps(result['exceptionDetails'])[:2000]}")
        return result["result"].get("value")


# Waits poll a condition every 20 ms up to 60 s (a loaded machine), then fail with what they waited for.
JS_HELPERS = r"""
const waitFor = async (condition, what = String(condition)) => {
  const deadline = performance.now() + 60000;
  while (!condition()) {
    if (performance.now() > deadline) { throw new Error("timed out waiting for " + what); }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};
const video = () => document.querySelector("video.camera-video");
const settled = () => waitFor(() => !video().seeking && video().readyState >= 2, "a decoded frame");
const pixels = (source, width, height) => {
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  const context = canvas.getContext("2d");
  context.drawImage(source, 0, 0, width, height);
  return Array.from(context.getImageData(0, 0, width, height).data);
};
const scrubTo = async (k) => {
  const scrubber = document.getElementById("scrubber");
  scrubber.value = String(k);
  scrubber.dispatchEvent(new Event("input", { bubbles: true }));
  await settled();
  const image = document.querySelector("img.camera-image");
  await waitFor(() => image.complete && image.naturalWidth > 0, "the image feature's frame");
  const cursor = document.querySelector("line.cursor");
  return {
    frame: Number(document.body.dataset.frame),
    time: video().currentTime,
    cursors: Array.from(document.querySelectorAll("line.cursor")).map((l) => [Number(l.getAttribute("x1")), Number(l.getAttribute("x2"))]),
    image: image.getAttribute("src"),
    picture: pixels(image, image.naturalWidth, image.naturalHeight),
  };
};
// The current picture of the page's video number i, after the next rendering step.
const videoPixels = async (i) => {
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  const element = document.querySelectorAll("video.camera-video")[i];
  return pixels(element, element.videoWidth, element.videoHeight);
};
"""


def as_image(rgba: list[int], height: int, width: int) -> np.ndarray:
    return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[..., :3]


def assert_video_shows(
    browser: Chromium, episode: int, frame: int, size=FRONT_SIZE, video: int = 0, timeout_s: float = 60.0
) -> None:
    """The page's video number `video` comes to show painted frame (episode, frame). Polled:
    Chromium may report a seek done (``seeked``, readyState 4) a moment before a canvas draws the
    new picture."""
    deadline = time.monotonic() + timeout_s
    while True:
        image = as_image(browser.evaluate(f"videoPixels({video})"), *size)
        try:
            assert_painted_frame(image, episode, frame)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


@pytest.fixture
def browser(tmp_path):
    chromium = Chromium(tmp_path / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("codec", sorted(CODECS))
def test_page_in_chromium(codec, dataset_root, tmp_path_factory, browser) -> None:
    root = (
        dataset_root
        if codec == "av1"
        else record(tmp_path_factory.mktemp("viz_h264") / "dataset", CODECS[codec])
    )
    out = tmp_path_factory.mktemp(f"pages_{codec}")
    pages = visualize_dataset(root, output_dir=out, png=False, progress=False)
    episode, length, start = 1, LENGTHS[1], LENGTHS[0] / FPS
    browser.open(pages[episode].as_uri())

    # The video decodes.
    browser.evaluate("settled()")
    assert browser.evaluate("[video().videoWidth, video().videoHeight, video().error]") == [96, 64, None]

    # The plots render: per feature a trace per dimension, each through every frame's value.
    plots = browser.evaluate(
        """Array.from(document.querySelectorAll("svg.plot")).map((svg) => ({
             feature: svg.dataset.feature,
             width: svg.getBoundingClientRect().width,
             traces: Array.from(svg.querySelectorAll("polyline.trace")).map((line) => ({
               name: line.dataset.name,
               points: Array.from(line.points).map((p) => [p.x, p.y]),
               drawn: line.getBBox().width })) }))"""
    )
    assert [plot["feature"] for plot in plots] == ["observation.state", "action", "observation.grid"]
    assert all(plot["width"] > 100 for plot in plots)
    assert [trace["name"] for trace in plots[0]["traces"]] == STATE_NAMES
    assert [len(plot["traces"]) for plot in plots] == [3, 2, 4]
    for dim, trace in enumerate(plots[0]["traces"]):
        assert trace["drawn"] == pytest.approx(length - 1)
        expected = [[f, -float(state(episode, f)[dim])] for f in range(length)]
        np.testing.assert_allclose(trace["points"], expected, rtol=1e-5, atol=1e-6)
    assert browser.evaluate("document.body.dataset.frame") == "0"

    # The scrubber seeks the video to from_timestamp + k / fps, where the pixels are frame k, and
    # moves every plot's cursor and the image feature's picture to frame k.
    for k in (5, 0, length - 1, 3):
        shown = browser.evaluate(f"scrubTo({k})")
        assert shown["frame"] == k
        assert shown["time"] == pytest.approx(start + k / FPS, abs=0.5 / FPS)
        assert shown["cursors"] == [[k, k]] * 3
        assert shown["image"] == f"images/{WRIST}/episode_{episode:06d}/frame_{k:06d}.png"
        assert_video_shows(browser, episode, k)
        np.testing.assert_array_equal(
            as_image(shown["picture"], *WRIST_SIZE), paint_frame(episode, k, *WRIST_SIZE)
        )

    # Playing moves the scrubber and the cursors with the video, and stops on the episode's last
    # frame (episode 0 is followed by episode 1 in the same file).
    browser.open(pages[0].as_uri())
    browser.evaluate("settled()")
    moved = browser.evaluate(
        """(async () => {
             document.getElementById("play").click();
             await waitFor(() => Number(document.getElementById("scrubber").value) > 0, "the scrubber to move");
             const scrubber = Number(document.getElementById("scrubber").value);
             const cursor = Number(document.querySelector("line.cursor").getAttribute("x1"));
             return { scrubber, cursor, time: video().currentTime, paused: video().paused };
           })()"""
    )
    assert moved["scrubber"] > 0 and moved["time"] > 0
    # The cursor may have moved on by a frame between the two reads of a playing page; never back.
    assert moved["cursor"] >= moved["scrubber"]
    ended = browser.evaluate(
        """(async () => {
             await waitFor(() => document.getElementById("play").textContent === "Play", "playback to stop");
             await settled();
             return { frame: Number(document.body.dataset.frame), paused: video().paused, time: video().currentTime,
                      cursor: Number(document.querySelector("line.cursor").getAttribute("x1")) };
           })()"""
    )
    last = LENGTHS[0] - 1
    assert ended["frame"] == last and ended["cursor"] == last and ended["paused"]
    assert ended["time"] < LENGTHS[0] / FPS
    assert_video_shows(browser, 0, last)
    assert browser.evaluate("window.pageErrors") == []


@pytest.mark.timeout(600)
def test_lerobot_recorded_dataset_in_chromium(tmp_path, browser) -> None:
    """Real LeRobot's files: two cameras (AV1 by PyAV's SVT-AV1) whose episode 2 starts at
    from_timestamp 0.7999999999999999 s, a hair before frame 8 of the file: seeking must still land
    on each frame, not on the one before."""
    root = LEROBOT_DATA / "two_cams_fps10"
    spec = DATASETS["two_cams_fps10"]
    episode, length = 2, spec["lengths"][2]
    pages = visualize_dataset(root, [episode], output_dir=tmp_path / "out", png=False, progress=False)
    browser.open(pages[0].as_uri())
    browser.evaluate(
        "waitFor(() => Array.from(document.querySelectorAll('video')).every((v) => v.readyState >= 2))"
    )
    keys = browser.evaluate("Array.from(document.querySelectorAll('video')).map((v) => v.dataset.key)")
    assert keys == list(spec["cameras"])
    for k in (4, 0, length - 1, 7):
        browser.evaluate(f"window.episodeViewer.show({k})")
        for position, key in enumerate(keys):
            assert_video_shows(browser, episode, k, size=spec["cameras"][key], video=position)
    assert browser.evaluate("window.pageErrors") == []
