"""Reading LeRobot v3 datasets for fine-tuning: episodes, tasks and numeric columns from the
parquet files; frames decoded from the videos (or from image columns) into the on-disk cache."""
from __future__ import annotations

import json
import shutil

import cv2
import imageio_ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.finetune_data import expert_action, make_lerobot_dataset

from octo_ros.finetune.lerobot import DatasetError, FrameStore, LeRobotDataset
from octo_ros.perception.image_codec import resize_like_octo


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot")
    return make_lerobot_dataset(root / "ds", episodes=3, steps=10, instructions=("pick the cube", "open the drawer"))


def video_frames(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]


def test_episodes_tasks_and_columns(dataset):
    ds = LeRobotDataset(dataset)
    assert ds.cameras == ["observation.images.cam"] and ds.action_dim == 7 and ds.state_dim == 7
    eps = ds.episodes()
    assert [e.index for e in eps] == [0, 1, 2] and [e.instruction for e in eps] == ["pick the cube", "open the drawer", "pick the cube"]
    data = pq.read_table(dataset / "data/chunk-000/file-000.parquet").to_pydict()
    for e in eps:
        rows = [i for i, k in enumerate(data["episode_index"]) if k == e.index]
        np.testing.assert_array_equal(e.action, np.array([data["action"][i] for i in rows], np.float32))
        np.testing.assert_array_equal(e.state, np.array([data["observation.state"][i] for i in rows], np.float32))
    # the recorded expert: action = f(grey level); the grey level is in the state (v / 255)
    v = eps[0].state[:, 0] * 255
    np.testing.assert_allclose(eps[0].action, np.stack([expert_action(x, 7) for x in v]), atol=1e-5)
    assert ds.split_episodes("train") == [0, 1, 2] and ds.split_episodes("val") is None


def test_frames_come_from_the_video_resized_like_octo(dataset, tmp_path):
    ds = LeRobotDataset(dataset)
    eps = ds.episodes([1, 2])  # a subset: only their frames are decoded
    store = FrameStore.build(tmp_path / "cache", ds, "observation.images.cam", eps, (32, 32))
    frames = video_frames(dataset / "videos/observation.images.cam/chunk-000/file-000.mp4")
    first = sum(e.length for e in ds.episodes([0]))
    assert store.frames.shape == (eps[0].length + eps[1].length, 32, 32, 3)
    for e in eps:
        offset = first if e.index == 1 else first + eps[0].length
        for i in (0, e.length - 1):
            np.testing.assert_array_equal(store.frames[e.frame_slots["observation.images.cam"][i]],
                                          resize_like_octo(frames[offset + i], (32, 32)))
    # a second build reuses the cache file
    mtime = store.path.stat().st_mtime_ns
    again = FrameStore.build(tmp_path / "cache", ds, "observation.images.cam", ds.episodes([1, 2]), (32, 32))
    assert again.path == store.path and store.path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.frames, store.frames)


def test_image_columns_decode_like_the_video(dataset, tmp_path):
    """The same dataset with the camera stored as PNG images in the data parquet (LeRobot's
    ``dtype: image``) gives the same frames."""
    images = tmp_path / "images"
    shutil.copytree(dataset, images)
    frames = video_frames(images / "videos/observation.images.cam/chunk-000/file-000.mp4")
    shutil.rmtree(images / "videos")
    data_file = images / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data_file)
    cells = [{"bytes": cv2.imencode(".png", f[:, :, ::-1])[1].tobytes(), "path": None} for f in frames]
    table = table.append_column("observation.images.cam", pa.array(cells, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
    pq.write_table(table, data_file)
    info = json.loads((images / "meta/info.json").read_text())
    info["features"]["observation.images.cam"]["dtype"] = "image"
    (images / "meta/info.json").write_text(json.dumps(info))

    from_video = LeRobotDataset(dataset)
    from_images = LeRobotDataset(images)
    a = FrameStore.build(tmp_path / "c1", from_video, "observation.images.cam", from_video.episodes(), (24, 24))
    b = FrameStore.build(tmp_path / "c2", from_images, "observation.images.cam", from_images.episodes(), (24, 24))
    np.testing.assert_array_equal(a.frames, b.frames)


def test_bad_datasets_are_named(dataset, tmp_path):
    with pytest.raises(DatasetError, match="not a LeRobot dataset"):
        LeRobotDataset(tmp_path)
    old = tmp_path / "v21"
    shutil.copytree(dataset, old)
    info = json.loads((old / "meta/info.json").read_text())
    info["codebase_version"] = "v2.1"
    (old / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="v2.1; only v3"):
        LeRobotDataset(old)
    short = tmp_path / "short"
    shutil.copytree(dataset, short)
    video = short / "videos/observation.images.cam/chunk-000/file-000.mp4"
    video.write_bytes(video.read_bytes()[: len(video.read_bytes()) // 3])
    ds = LeRobotDataset(short)
    with pytest.raises(DatasetError, match="file-000.mp4"):
        FrameStore.build(tmp_path / "c", ds, "observation.images.cam", ds.episodes(), (16, 16))
