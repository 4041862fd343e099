"""Depth cameras, recorded and read as LeRobot 0.6.1 records and reads them.

Compared with tests/data/lerobot_depth, written by real LeRobot 0.6.1 from the recipe in
depth_recordings.py (tools/lerobot_reference/make_depth_reference.py): the quantiser and its inverse
over their whole range, the 12-bit codes in LeRobot's depth videos, the items and stats LeRobot's
dataset returns in millimetres and metres, and the files dexloop's writer produces for the same
frames (info.json, stats, episode metadata, the codes in its videos).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import depth_recordings as recipe
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from support import DATA, assert_same_values

from dexloop._core.video import VideoDecoder
from dexloop.datasets import LeRobotDataset
from dexloop.datasets.dataset_writer import video_info
from dexloop.datasets.depth import dequantize_depth, quantize_depth
from dexloop.errors import DatasetArgumentError, DatasetError, DatasetFrameError
from dexloop.video.decoder import decode_video_frames
from dexloop.video.encoder import DepthEncoderConfig, RGBEncoderConfig

REFERENCE = DATA / "lerobot_depth"
REPO_ID = "dexloop/depth_fps10"
QUANTISER = (0.01, 10.0, 3.5, True)  # LeRobot's defaults: depth_min, depth_max, shift, use_log
# torch's vectorised exp may differ by an ulp between CPUs (its AVX2 and AVX-512 kernels): depth in
# metres made on another machine (LeRobot's references) may differ by an ulp of exp's result, depth +
# shift, at most depth_max + shift. Millimetres are rounded to whole ones and compared exactly.
EXP_ULP = float(np.spacing(np.float32(QUANTISER[1] + QUANTISER[2])))
DEPTH_KEYS = (recipe.DEPTH_MM, recipe.DEPTH_M)
# The RGB camera is encoded with H.264 here: Debian's SVT-AV1 takes no frame under 64 pixels high
# (LeRobot's bundled one does); the depth cameras get LeRobot's default depth encoder either way.
RGB_ENCODER = {"vcodec": "h264", "pix_fmt": "yuv420p", "g": 2, "crf": 23}


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "quantiser.npz") as data:
        return dict(data)


def expected_item(name: str) -> dict:
    with np.load(REFERENCE / "expected" / f"{name}.npz") as data:
        keys = [str(k) for k in data["__keys__"]]
        item = {}
        for key in keys:
            if key == recipe.RGB:
                continue
            value = data[key]
            item[key] = str(value) if value.dtype.kind == "U" else torch.from_numpy(value)
    return keys, item


def lerobot_copy(tmp_path: Path) -> Path:
    target = tmp_path / "depth_fps10"
    shutil.copytree(REFERENCE / "depth_fps10", target)
    return target


def create(root: Path, features: dict | None = None, **kwargs) -> LeRobotDataset:
    return LeRobotDataset.create(
        REPO_ID,
        fps=recipe.FPS,
        features=features or recipe.features(),
        root=root,
        rgb_encoder=RGBEncoderConfig(**RGB_ENCODER),
        **kwargs,
    )


def record_with_dexloop(root: Path, **kwargs) -> None:
    recipe.record(create(root, **kwargs))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """The recipe recorded by dexloop with LeRobot's layout (one episode a video file)."""
    root = tmp_path_factory.mktemp("depth") / "depth_fps10"
    record_with_dexloop(root, video_files_size_in_mb=recipe.VIDEO_FILES_SIZE_IN_MB)
    return root


# -- the quantiser ---------------------------------------------------------------------------------


def test_quantiser_gives_lerobots_codes_over_the_whole_range(reference) -> None:
    millimetres, metres = recipe.quantiser_millimetres(), recipe.quantiser_metres()
    np.testing.assert_array_equal(quantize_depth(millimetres, *QUANTISER), reference["quantize_mm"])
    np.testing.assert_array_equal(quantize_depth(metres, *QUANTISER), reference["quantize_m"])
    linear = quantize_depth(metres, 0.01, 10.0, 3.5, use_log=False)
    np.testing.assert_array_equal(linear, reference["quantize_m_linear"])
    assert reference["quantize_m"].min() == 0 and reference["quantize_m"].max() == 4095  # clipped


def test_dequantiser_gives_lerobots_depth_for_every_code(reference) -> None:
    codes = torch.from_numpy(np.arange(4096, dtype=np.uint16).reshape(1, 64, 64))
    for unit in ("mm", "m"):
        ours = dequantize_depth(codes, *QUANTISER, output_unit=unit)
        assert ours.dtype == torch.float32 and ours.shape == (1, 64, 64)  # (1, H, W) stays (1, H, W)
        if unit == "mm":  # rounded to whole millimetres: equal
            np.testing.assert_array_equal(ours.numpy(), reference["dequantize_torch_mm"], err_msg=unit)
            continue
        # torch's vectorised exp may differ by an ulp between CPUs (AVX2 / AVX-512 kernels); an ulp of
        # exp's result (depth + shift, up to depth_max + shift) is what metres may differ by.
        ulp = float(np.spacing(np.float32(QUANTISER[1] + QUANTISER[2])))
        np.testing.assert_allclose(
            ours.numpy(), reference["dequantize_torch_m"], rtol=0, atol=ulp, err_msg=unit
        )


def test_lerobots_depth_videos_hold_the_codes_of_the_recorded_frames(reference) -> None:
    for key, make in ((recipe.DEPTH_MM, recipe.depth_millimetres), (recipe.DEPTH_M, recipe.depth_metres)):
        ours = np.stack(
            [quantize_depth(make(*recipe.frame_of_row(r)), *QUANTISER) for r in range(sum(recipe.LENGTHS))]
        )
        np.testing.assert_array_equal(ours, reference[f"quantized_codes/{key}"])
        decoded = []
        for episode, length in enumerate(recipe.LENGTHS):
            path = REFERENCE / f"depth_fps10/videos/{key}/chunk-000/file-{episode:03d}.mp4"
            decoded.append(VideoDecoder(str(path)).decode_gray16(np.arange(length) / recipe.FPS)[:, 0])
        np.testing.assert_array_equal(np.concatenate(decoded), ours)  # x265 lossless: exact codes
        np.testing.assert_array_equal(reference[f"decoded_codes/{key}"], ours)


def test_decode_video_frames_returns_lerobots_depth_codes() -> None:
    path = REFERENCE / f"depth_fps10/videos/{recipe.DEPTH_M}/chunk-000/file-000.mp4"
    frames = decode_video_frames(path, [0.0, 0.3], 1e-4, is_depth=True)
    assert frames.dtype == torch.uint16 and frames.shape == (2, 1, recipe.HEIGHT, recipe.WIDTH)
    expected = quantize_depth(recipe.depth_metres(0, 3), *QUANTISER)
    np.testing.assert_array_equal(frames[1, 0].numpy(), expected)


# -- reading LeRobot's recording -------------------------------------------------------------------


def _reference_tolerance(unit: str) -> dict[str, float]:
    return {recipe.DEPTH_MM: EXP_ULP, recipe.DEPTH_M: EXP_ULP} if unit == "m" else {}


@pytest.mark.parametrize("name,index,delta,unit", recipe.QUERIES, ids=[q[0] for q in recipe.QUERIES])
def test_items_of_lerobots_recording_are_lerobots(tmp_path, name, index, delta, unit) -> None:
    dataset = LeRobotDataset(
        REPO_ID, root=lerobot_copy(tmp_path), delta_timestamps=delta, depth_output_unit=unit
    )
    keys, expected = expected_item(name)
    item = dataset[index]
    assert list(item) == keys
    rgb = item.pop(recipe.RGB)
    assert rgb.dtype == torch.float32 and rgb.shape[-3:] == (3, recipe.HEIGHT, recipe.WIDTH)
    assert_same_values(item, expected, atol=_reference_tolerance(unit))
    for key in DEPTH_KEYS:
        assert item[key].dtype == torch.float32


def test_items_are_the_dequantised_codes_of_the_recorded_frames(tmp_path) -> None:
    """Independently of the npz: each depth item is dequantize(quantize(frame)), in the asked unit,
    (1, H, W) float32; millimetres are whole, metres within the quantiser's range."""
    root = lerobot_copy(tmp_path)
    for unit in ("mm", "m"):
        dataset = LeRobotDataset(REPO_ID, root=root, depth_output_unit=unit)
        for row in (0, 7, 12):
            episode, index = recipe.frame_of_row(row)
            item = dataset[row]
            for key, make in (
                (recipe.DEPTH_MM, recipe.depth_millimetres),
                (recipe.DEPTH_M, recipe.depth_metres),
            ):
                codes = torch.from_numpy(quantize_depth(make(episode, index), *QUANTISER)[None, None])
                expected = dequantize_depth(codes, *QUANTISER, output_unit=unit)[0]
                assert item[key].shape == (1, recipe.HEIGHT, recipe.WIDTH)
                torch.testing.assert_close(item[key], expected, rtol=0, atol=0)
            depth_m = item[recipe.DEPTH_M] / (1000.0 if unit == "mm" else 1.0)
            truth = torch.from_numpy(recipe.depth_metres(episode, index)).clamp(0.01, 10.0)
            # log quantisation: steps of about 0.17 % of (depth + shift)
            assert (depth_m[0] - truth).abs().max() < 0.0025 * (truth.max() + 3.5) + 1e-3
        if unit == "mm":
            assert torch.equal(item[recipe.DEPTH_MM], item[recipe.DEPTH_MM].round())


@pytest.mark.parametrize("unit", ["mm", "m"])
def test_depth_stats_are_rescaled_to_the_output_unit_as_lerobot_does(tmp_path, unit) -> None:
    dataset = LeRobotDataset(REPO_ID, root=lerobot_copy(tmp_path), depth_output_unit=unit)
    with np.load(REFERENCE / "expected" / f"stats_{unit}.npz") as data:
        for name, value in data.items():
            key, stat = name.rsplit("/", 1)
            np.testing.assert_allclose(dataset.meta.stats[key][stat], value, rtol=1e-12, err_msg=name)


def test_image_transforms_leave_depth_maps_alone(tmp_path) -> None:
    dataset = LeRobotDataset(REPO_ID, root=lerobot_copy(tmp_path), image_transforms=lambda image: image * 0)
    item = dataset[4]
    assert float(item[recipe.RGB].abs().sum()) == 0.0
    assert float(item[recipe.DEPTH_MM].min()) >= 10.0  # millimetres, untouched


# -- recording like LeRobot ------------------------------------------------------------------------


def test_info_json_is_lerobots(recorded) -> None:
    ours = json.loads((recorded / "meta/info.json").read_text())
    theirs = json.loads((REFERENCE / "depth_fps10/meta/info.json").read_text())
    theirs["features"][recipe.RGB]["info"] = video_info(
        RGBEncoderConfig(**RGB_ENCODER), recipe.HEIGHT, recipe.WIDTH, recipe.FPS
    )
    assert ours == theirs
    assert list(ours["features"][recipe.DEPTH_MM]["info"]) == list(
        theirs["features"][recipe.DEPTH_MM]["info"]
    )
    assert ours["features"][recipe.DEPTH_MM]["info"]["depth_unit"] == "mm"
    assert ours["features"][recipe.DEPTH_M]["info"]["depth_unit"] == "m"


# LeRobot's depth means are float32 sums of metres or of squared millimetres (above 2**24): numpy
# 2.4 (here) and 2.2 (LeRobot's venv) add float32 in different orders, so mean and std agree to
# float32 precision (min, max, count and the quantiles exactly, to float64 rounding).
FLOAT32_RTOL = 1e-6


def rtol_of(stat: str) -> float:
    return FLOAT32_RTOL if stat.rsplit("/", 1)[-1] in ("mean", "std") else 1e-9


def test_stats_are_lerobots(recorded) -> None:
    ours = json.loads((recorded / "meta/stats.json").read_text())
    theirs = json.loads((REFERENCE / "depth_fps10/meta/stats.json").read_text())
    assert ours.keys() == theirs.keys()
    for feature in (*DEPTH_KEYS, "observation.state"):
        assert ours[feature].keys() == theirs[feature].keys()
        for stat, value in theirs[feature].items():
            np.testing.assert_allclose(
                ours[feature][stat], value, rtol=rtol_of(stat), err_msg=f"{feature} {stat}"
            )
    ours_rows = pq.read_table(next(recorded.glob("meta/episodes/*/*.parquet")))
    theirs_rows = pq.read_table(next((REFERENCE / "depth_fps10").glob("meta/episodes/*/*.parquet")))
    for column in theirs_rows.column_names:
        if column.startswith(tuple(f"stats/{key}/" for key in DEPTH_KEYS)):
            np.testing.assert_allclose(
                np.array(ours_rows.column(column).to_pylist()),
                np.array(theirs_rows.column(column).to_pylist()),
                rtol=rtol_of(column),
                err_msg=column,
            )


def test_dexloops_depth_videos_hold_lerobots_codes(recorded, reference) -> None:
    for key in DEPTH_KEYS:
        decoded = []
        for episode, length in enumerate(recipe.LENGTHS):
            path = recorded / f"videos/{key}/chunk-000/file-{episode:03d}.mp4"
            decoder = VideoDecoder(str(path))
            decoded.append(decoder.decode_gray16(np.arange(length) / recipe.FPS)[:, 0])
        assert decoder.info.codec == "hevc" and decoder.info.pix_fmt == "gray12le"
        np.testing.assert_array_equal(np.concatenate(decoded), reference[f"quantized_codes/{key}"])


@pytest.mark.parametrize("name,index,delta,unit", recipe.QUERIES, ids=[q[0] for q in recipe.QUERIES])
def test_items_of_dexloops_recording_are_lerobots(recorded, name, index, delta, unit) -> None:
    dataset = LeRobotDataset(REPO_ID, root=recorded, delta_timestamps=delta, depth_output_unit=unit)
    keys, expected = expected_item(name)
    item = dataset[index]
    assert list(item) == keys
    item.pop(recipe.RGB)
    assert_same_values(item, expected, atol=_reference_tolerance(unit))


def test_episodes_of_any_length_share_one_depth_video(tmp_path) -> None:
    """dexloop appends 1- and 2-frame episodes (which x265 does not reorder) to a depth video with
    longer ones; every frame reads back as dequantize(quantize(frame)), batch and window alike."""
    root = tmp_path / "mixed"
    dataset = create(root)
    lengths = (1, 5, 2, 1, 4)
    for episode, length in enumerate(lengths):
        for index in range(length):
            dataset.add_frame({**recipe.frame(episode % 3, index + episode), "task": "t"})
        dataset.save_episode()
    dataset.finalize()
    assert len(list(root.glob(f"videos/{recipe.DEPTH_M}/*/*.mp4"))) == 1
    reader = LeRobotDataset(
        REPO_ID, root=root, depth_output_unit="m", delta_timestamps={recipe.DEPTH_MM: [-0.1, 0]}
    )
    items = reader.__getitems__(list(range(len(reader))))
    row = 0
    for episode, length in enumerate(lengths):
        for index in range(length):
            for key, make in (
                (recipe.DEPTH_M, recipe.depth_metres),
                (recipe.DEPTH_MM, recipe.depth_millimetres),
            ):
                codes = quantize_depth(make(episode % 3, index + episode), *QUANTISER)
                expected = dequantize_depth(torch.from_numpy(codes[None, None]), *QUANTISER, output_unit="m")[
                    0
                ]
                value = items[row][key]
                got = value[-1] if key == recipe.DEPTH_MM else value
                torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=f"row {row} {key}")
            assert items[row][f"{recipe.DEPTH_MM}_is_pad"].tolist() == [index == 0, False]
            row += 1


def test_dataset_tools_keep_depth_videos_exact(tmp_path) -> None:
    """delete-episodes, split and merge on a recording whose depth videos hold several episodes
    (x265 with B-frames): every depth map of the kept frames reads back exactly as before."""
    from dexloop.datasets.tools import delete_episodes, merge_datasets, split_dataset

    record_with_dexloop(tmp_path / "source")
    source = LeRobotDataset(REPO_ID, root=tmp_path / "source")
    assert len({str(source.meta.get_video_file_path(e, recipe.DEPTH_MM)) for e in range(3)}) == 1
    depth_keys = (recipe.DEPTH_MM, recipe.DEPTH_M)

    def assert_same_depth(edited: LeRobotDataset, rows: list[int]) -> None:
        assert len(edited) == len(rows)
        for position, row in enumerate(rows):
            for key in depth_keys:
                torch.testing.assert_close(edited[position][key], source[row][key], rtol=0, atol=0)

    lengths = list(recipe.LENGTHS)
    first = [sum(lengths[:e]) for e in range(len(lengths))]
    rows_of = {e: list(range(first[e], first[e] + lengths[e])) for e in range(len(lengths))}
    deleted = delete_episodes(source, [1], output_dir=tmp_path / "deleted")
    assert_same_depth(deleted, rows_of[0] + rows_of[2])
    parts = split_dataset(source, {"a": [0, 2], "b": [1]}, output_dir=tmp_path / "split")
    merged = merge_datasets([parts["b"], parts["a"]], "user/merged", output_dir=tmp_path / "merged")
    assert_same_depth(merged, rows_of[1] + rows_of[0] + rows_of[2])


def test_a_custom_quantiser_is_recorded_used_on_read_and_kept_on_resume(tmp_path) -> None:
    root = tmp_path / "custom"
    config = DepthEncoderConfig(depth_min=0.05, depth_max=8.0, shift=2.5, use_log=True)
    features = {key: value for key, value in recipe.features().items() if key != recipe.RGB}
    dataset = create(root, features, depth_encoder=config)
    for index in range(3):
        dataset.add_frame({k: v for k, v in recipe.frame(0, index).items() if k != recipe.RGB})
    dataset.save_episode()
    dataset.finalize()
    info = json.loads((root / "meta/info.json").read_text())["features"][recipe.DEPTH_M]["info"]
    assert (info["video.depth_min"], info["video.depth_max"], info["video.shift"]) == (0.05, 8.0, 2.5)
    resumed = LeRobotDataset.resume(REPO_ID, root=root)
    for index in range(3, 5):
        resumed.add_frame({k: v for k, v in recipe.frame(0, index).items() if k != recipe.RGB})
    resumed.save_episode()
    resumed.finalize()
    reader = LeRobotDataset(REPO_ID, root=root)
    custom = (0.05, 8.0, 2.5, True)
    for row in range(5):
        codes = quantize_depth(recipe.depth_metres(0, row), *custom)
        expected = dequantize_depth(torch.from_numpy(codes[None, None]), *custom, output_unit="mm")[0]
        torch.testing.assert_close(reader[row][recipe.DEPTH_M], expected, rtol=0, atol=0)


# -- bad input -------------------------------------------------------------------------------------


def bad_frames() -> list[tuple[str, object]]:
    good = recipe.depth_metres(0, 0)[..., None]
    nan, negative = good.copy(), good.copy()
    nan[3, 4, 0] = np.nan
    negative[5, 6, 0] = -0.2
    return [
        ("(H, W): LeRobot takes (H, W, 1)", good[..., 0]),
        ("wrong shape", np.zeros((recipe.HEIGHT, recipe.WIDTH - 1, 1), np.float32)),
        ("three channels", np.zeros((recipe.HEIGHT, recipe.WIDTH, 3), np.float32)),
        ("float64", good.astype(np.float64)),
        ("uint8", np.zeros((recipe.HEIGHT, recipe.WIDTH, 1), np.uint8)),
        ("NaN", nan),
        ("negative", negative),
        ("-inf", np.full_like(good, -np.inf)),
        ("millimetres in a metre camera", recipe.depth_millimetres(0, 0)[..., None]),
    ]


def test_bad_depth_frames_are_refused_and_the_recording_goes_on(tmp_path) -> None:
    root = tmp_path / "bad"
    dataset = create(root)
    dataset.add_frame(recipe.frame(0, 0))  # records depth_m's unit: metres
    for what, value in bad_frames():
        with pytest.raises(DatasetFrameError, match=recipe.DEPTH_M):
            dataset.add_frame({**recipe.frame(0, 1), recipe.DEPTH_M: value})
        assert dataset.writer.episode_buffer.size == 1, what
    dataset.add_frame(recipe.frame(0, 1))
    dataset.save_episode()
    dataset.finalize()
    reader = LeRobotDataset(REPO_ID, root=root, depth_output_unit="m")
    assert len(reader) == 2
    codes = quantize_depth(recipe.depth_metres(0, 1), *QUANTISER)
    expected = dequantize_depth(torch.from_numpy(codes[None, None]), *QUANTISER, output_unit="m")[0]
    torch.testing.assert_close(reader[1][recipe.DEPTH_M], expected, rtol=0, atol=0)


def test_infinite_depth_is_stored_as_depth_max_as_lerobot_does(tmp_path) -> None:
    far = recipe.depth_metres(0, 0)
    far[:4] = np.inf
    assert (quantize_depth(far, *QUANTISER)[:4] == 4095).all()


def test_bad_depth_settings_are_refused(tmp_path) -> None:
    with pytest.raises(DatasetArgumentError, match="DepthEncoderConfig"):
        LeRobotDataset.create(
            REPO_ID, fps=10, features=recipe.features(), root=tmp_path / "a", depth_encoder=object()
        )
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="depth_min \\+ shift"):
        DepthEncoderConfig(depth_min=0.01, shift=-1.0)
    with pytest.raises(ValueError, match="pix_fmt"):
        DepthEncoderConfig(pix_fmt="yuv420p")
    root = lerobot_copy(tmp_path)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"][recipe.DEPTH_M]["info"]["depth_unit"] = "cm"
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="depth_unit is 'cm'"):
        LeRobotDataset(REPO_ID, root=root)


# -- depth maps as image features (TIFF in the parquet) --------------------------------------------

IMAGES_REPO_ID = "dexloop/depth_images_fps10"


def expected_image_item(name: str) -> tuple[list[str], dict]:
    with np.load(REFERENCE / "expected_images" / f"{name}.npz") as data:
        keys = [str(k) for k in data["__keys__"]]
        item = {k: str(data[k]) if data[k].dtype.kind == "U" else torch.from_numpy(data[k]) for k in keys}
    return keys, item


@pytest.fixture(scope="module")
def recorded_images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("depth_images") / "depth_images_fps10"
    recipe.record(create(root, recipe.features(images=True)), images=True)
    return root


@pytest.mark.parametrize("name,index,delta,unit", recipe.QUERIES, ids=[q[0] for q in recipe.QUERIES])
@pytest.mark.parametrize("whose", ["lerobot", "dexloop"])
def test_depth_image_items_are_lerobots(tmp_path, recorded_images, whose, name, index, delta, unit) -> None:
    if whose == "lerobot":
        root = tmp_path / "depth_images_fps10"
        shutil.copytree(REFERENCE / "depth_images_fps10", root)
    else:
        root = recorded_images
    dataset = LeRobotDataset(IMAGES_REPO_ID, root=root, delta_timestamps=delta, depth_output_unit=unit)
    keys, expected = expected_image_item(name)
    item = dataset[index]
    assert list(item) == keys
    assert_same_values(item, expected, atol=_reference_tolerance(unit))
    assert item[recipe.DEPTH_MM].shape[-3:] == (1, recipe.IMAGE_HEIGHT, recipe.IMAGE_WIDTH)


def test_depth_image_recording_is_lerobots(recorded_images) -> None:
    from io import BytesIO

    from PIL import Image

    theirs_root = REFERENCE / "depth_images_fps10"
    ours = json.loads((recorded_images / "meta/info.json").read_text())
    theirs = json.loads((theirs_root / "meta/info.json").read_text())
    assert ours == theirs
    assert ours["features"][recipe.DEPTH_MM]["info"] == {"is_depth_map": True, "depth_unit": "mm"}
    ours_stats = json.loads((recorded_images / "meta/stats.json").read_text())
    theirs_stats = json.loads((theirs_root / "meta/stats.json").read_text())
    for key in DEPTH_KEYS:
        for stat, value in theirs_stats[key].items():
            np.testing.assert_allclose(
                ours_stats[key][stat], value, rtol=rtol_of(stat), err_msg=f"{key} {stat}"
            )
    mine = pq.read_table(next(recorded_images.glob("data/*/*.parquet")))
    reference = pq.read_table(next(theirs_root.glob("data/*/*.parquet")))
    assert mine.schema.remove_metadata() == reference.schema.remove_metadata()
    for key in DEPTH_KEYS:
        for a, b in zip(mine.column(key).to_pylist(), reference.column(key).to_pylist(), strict=True):
            assert a["path"] == b["path"] and a["path"].endswith(".tiff")
            with Image.open(BytesIO(a["bytes"])) as x, Image.open(BytesIO(b["bytes"])) as y:
                assert x.mode == y.mode and x.format == y.format == "TIFF"
                np.testing.assert_array_equal(np.array(x), np.array(y))


@pytest.mark.parametrize("unit", ["mm", "m"])
def test_depth_image_stats_are_rescaled_as_lerobot_does(tmp_path, unit) -> None:
    root = tmp_path / "depth_images_fps10"
    shutil.copytree(REFERENCE / "depth_images_fps10", root)
    dataset = LeRobotDataset(IMAGES_REPO_ID, root=root, depth_output_unit=unit)
    with np.load(REFERENCE / "expected_images" / f"stats_{unit}.npz") as data:
        for name, value in data.items():
            key, stat = name.rsplit("/", 1)
            np.testing.assert_allclose(dataset.meta.stats[key][stat], value, rtol=1e-12, err_msg=name)
