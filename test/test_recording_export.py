"""Export (LeRobot v3.0, RLDS-npz, Octo statistics) and review of recorded episode bags,
checked field by field against the format descriptions (../shared/reference/robots.md §5.4,
octo_spec.md §4.5)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState

from octo_ros.cli import main as recording_cli  # the `octo-ros` command line
from octo_ros.recording.bag import EpisodeBagWriter, EpisodeInfo, TopicSpec
from octo_ros_msgs.msg import ActionChunk, PolicyStatus

NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
JOINTS = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"]
S = 1_000_000_000
H, W = 64, 96
DURATION = 2.0


def _time(ns):
    return Time(sec=ns // S, nanosec=ns % S)


def record_bag(out: Path, instruction: str, outcome: str) -> Path:
    """A rollout as the recorder writes it (serialized CDR, receive-time stamps)."""
    topics = [TopicSpec("/cam/image_raw", "sensor_msgs/msg/Image", "sensor"),
              TopicSpec("/joint_states", "sensor_msgs/msg/JointState"),
              TopicSpec("/action_chunk", "octo_ros_msgs/msg/ActionChunk"),
              TopicSpec("/policy/status", "octo_ros_msgs/msg/PolicyStatus"),
              TopicSpec("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray")]
    w = EpisodeBagWriter(out, EpisodeInfo(robot="widowx", instruction=instruction, dataset_statistics_key="bridge_dataset"),
                         topics, name=f"widowx_{instruction.replace(' ', '-')}")
    T = time.time_ns()
    msgs = []
    for m in range(int(DURATION * 10)):  # camera 10 Hz, colour encodes the frame number
        t = T + m * S // 10 + 5_000_000
        img = Image(height=H, width=W, encoding="rgb8", step=3 * W, data=bytes(np.full((H, W, 3), (m * 10) % 250, np.uint8)))
        img.header.stamp = _time(t - 1_000_000)
        msgs.append((t, "/cam/image_raw", img))
    for j in range(int(DURATION * 50)):  # joints 50 Hz, position encodes the sample number
        t = T + j * S // 50 + 1_000_000
        js = JointState(name=JOINTS, position=[float(j)] * 6 + [0.02])
        js.header.stamp = _time(t)
        msgs.append((t, "/joint_states", js))
    for i in range(int(DURATION / 0.4)):  # a chunk every 0.4 s, 4 steps of 0.2 s, value = 10*seq + row
        t = T + i * 4 * S // 10 + 13_000_000
        actions = np.array([[10 * i + r + d / 100 for d in range(6)] + [float((i + r) % 2)] for r in range(4)], np.float32)
        chunk = ActionChunk(sequence=i, horizon=4, action_dim=7, step_period=0.2, dimension_names=NAMES,
                            actions=actions.ravel().tolist(), normalized=[0.0] * 28, inference_latency=0.03,
                            task=f"language: {instruction}")
        chunk.header.stamp = _time(t - 50_000_000)
        msgs.append((t, "/action_chunk", chunk))
    for k in range(2):
        msgs.append((T + k * S, "/policy/status", PolicyStatus(state=2, instruction=instruction, task_kind="language")))
        diag = DiagnosticArray(status=[DiagnosticStatus(name="widowx_adapter", message="per-step delta clamped" if k else "ok",
                                                        values=[KeyValue(key="clamped", value="true" if k else "false")])])
        msgs.append((T + k * S + 7_000_000, "/diagnostics", diag))
    for t, topic, msg in sorted(msgs, key=lambda x: x[0]):
        w.write(topic, t, serialize_message(msg))
    return w.close(outcome, {"note": "test"})


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    out = tmp_path_factory.mktemp("bags")
    return [record_bag(out, "pick up the spoon", "success"), record_bag(out, "open the drawer", "failure")]


def expected_episode():
    """Independent of the exporter: frames at 5 Hz from the first moment all streams have data."""
    T0 = 13_000_000  # first chunk (relative); camera starts at 5 ms, joints at 1 ms
    times = [T0 + k * S // 5 for k in range(100) if T0 + k * S // 5 <= 5_000_000 + (int(DURATION * 10) - 1) * S // 10]
    actions, states, colours = [], [], []
    for t in times:
        i = (t - 13_000_000) // (4 * S // 10)
        row = int(((t - (i * 4 * S // 10 + 13_000_000 - 50_000_000)) / 1e9) // 0.2)
        actions.append([10 * i + row + d / 100 for d in range(6)] + [float((i + row) % 2)])
        states.append([float((t - 1_000_000) // (S // 50))] * 6 + [0.02])
        colours.append((((t - 5_000_000) // (S // 10)) * 10) % 250)
    return np.array(actions, np.float32), np.array(states, np.float32), colours


def read_video(path: Path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    frames = [np.frombuffer(f, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for f in reader]
    return meta, frames


def test_export_lerobot_v3_field_by_field(bags, tmp_path, capsys):
    out = tmp_path / "lerobot"
    assert recording_cli(["export", str(bags[0]), str(bags[1]), "--format", "lerobot", str(out), "--quiet"]) == 0
    actions, states, colours = expected_episode()
    n = len(actions)

    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 5 and info["robot_type"] == "widowx"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 2 * n, 2)
    assert info["chunks_size"] == 1000 and info["splits"] == {"train": "0:2"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    f = info["features"]
    assert set(f) == {"observation.state", "action", "observation.images.cam", "timestamp", "frame_index",
                      "episode_index", "index", "task_index"}
    assert f["action"] == {"dtype": "float32", "shape": [7], "names": NAMES}
    assert f["observation.state"] == {"dtype": "float32", "shape": [7], "names": JOINTS}
    for k in ("frame_index", "episode_index", "index", "task_index"):
        assert f[k] == {"dtype": "int64", "shape": [1], "names": None}
    assert f["timestamp"] == {"dtype": "float32", "shape": [1], "names": None}
    cam = f["observation.images.cam"]
    assert cam["dtype"] == "video" and cam["shape"] == [H, W, 3] and cam["names"] == ["height", "width", "channels"]
    assert cam["info"]["video.fps"] == 5 and cam["info"]["video.pix_fmt"] == "yuv420p"
    assert cam["info"]["video.codec"] in ("av1", "h264")

    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert set(data.column_names) == {"observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"}
    for k in ("action", "observation.state"):
        t = data.schema.field(k).type
        assert pa.types.is_fixed_size_list(t) and t.list_size == 7 and t.value_type == pa.float32()
    assert str(data.schema.field("timestamp").type) == "float"
    assert all(str(data.schema.field(k).type) == "int64" for k in ("frame_index", "episode_index", "index", "task_index"))
    d = data.to_pydict()
    assert d["index"] == list(range(2 * n)) and d["episode_index"] == [0] * n + [1] * n
    assert d["frame_index"] == list(range(n)) * 2 and d["task_index"] == [0] * n + [1] * n
    np.testing.assert_allclose(d["timestamp"], np.tile(np.arange(n) / 5, 2), atol=1e-6)
    np.testing.assert_allclose(np.array(d["action"][:n]), actions, atol=1e-5)
    np.testing.assert_allclose(np.array(d["observation.state"][:n]), states, atol=1e-5)

    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert tasks.to_pydict() == {"task_index": [0, 1], "task": ["pick up the spoon", "open the drawer"]}
    assert tasks.schema.pandas_metadata["index_columns"] == ["task"]

    eps = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in eps] == [0, 1] and [e["length"] for e in eps] == [n, n]
    assert [e["tasks"] for e in eps] == [["pick up the spoon"], ["open the drawer"]]
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [(0, n), (n, 2 * n)]
    for e in eps:
        assert (e["data/chunk_index"], e["data/file_index"], e["meta/episodes/chunk_index"], e["meta/episodes/file_index"]) == (0, 0, 0, 0)
        assert (e["videos/observation.images.cam/chunk_index"], e["videos/observation.images.cam/file_index"]) == (0, 0)
        for feat in ("action", "observation.state", "observation.images.cam"):
            for stat in ("min", "max", "mean", "std", "count", "q01", "q99"):
                assert f"stats/{feat}/{stat}" in e
    assert [(e["videos/observation.images.cam/from_timestamp"], e["videos/observation.images.cam/to_timestamp"]) for e in eps] == \
        [pytest.approx((0.0, n / 5)), pytest.approx((n / 5, 2 * n / 5))]
    assert eps[0]["octo_ros/outcome"] == "success" and eps[1]["octo_ros/outcome"] == "failure"
    np.testing.assert_allclose(eps[0]["stats/action/mean"], actions.mean(0), atol=1e-5)

    stats = json.loads((out / "meta/stats.json").read_text())
    both = np.concatenate([actions, np.array(d["action"][n:])])
    np.testing.assert_allclose(stats["action"]["mean"], both.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats["action"]["std"], both.std(0), atol=1e-5)
    np.testing.assert_allclose(stats["action"]["max"], both.max(0), atol=1e-6)
    assert stats["action"]["count"] == [2 * n]
    assert np.array(stats["observation.images.cam"]["mean"]).shape == (3, 1, 1)

    meta, frames = read_video(out / "videos/observation.images.cam/chunk-000/file-000.mp4")
    assert len(frames) == 2 * n and tuple(meta["size"]) == (W, H) and meta["fps"] == 5
    np.testing.assert_allclose([fr.mean() for fr in frames[:n]], colours, atol=6)


def test_export_rlds_npz_and_octo_statistics(bags, tmp_path):
    out = tmp_path / "rlds"
    assert recording_cli(["export", "--format", "rlds-npz", str(bags[0]), str(bags[1]), str(out), "--quiet"]) == 0
    actions, states, colours = expected_episode()
    n = len(actions)
    features = json.loads((out / "features.json").read_text())
    assert features["episodes"] == ["episode_000000.npz", "episode_000001.npz"] and features["fps"] == 5
    for e, success in ((0, True), (1, False)):
        ep = np.load(out / f"episode_{e:06d}.npz")
        assert ep["observation/cam"].shape == (n, H, W, 3) and ep["observation/cam"].dtype == np.uint8
        assert [int(fr[0, 0, 0]) for fr in ep["observation/cam"]] == colours
        assert ep["observation/state"].dtype == np.float32
        np.testing.assert_allclose(ep["observation/state"], states)
        assert ep["action"].dtype == np.float32 and ep["action"].shape == (n, 7)
        np.testing.assert_allclose(ep["action"], actions, atol=1e-6)
        assert list(ep["language_instruction"]) == [["pick up the spoon", "open the drawer"][e]] * n
        assert ep["is_first"].tolist() == [True] + [False] * (n - 1)
        assert ep["is_last"].tolist() == [False] * (n - 1) + [True]
        assert ep["is_terminal"].tolist() == [False] * (n - 1) + [success]
        assert ep["discount"].dtype == np.float32 and np.all(ep["discount"] == 1)
        assert ep["reward"].tolist() == [0.0] * (n - 1) + [1.0 if success else 0.0]
        assert str(ep["episode_metadata/outcome"]) == ("success" if success else "failure")
        assert set(features["steps_fields"]) >= {"observation/cam", "observation/state", "action", "language_instruction",
                                                 "is_first", "is_last", "is_terminal", "discount", "reward"}

    stats = json.loads((out / "dataset_statistics.json").read_text())
    both = np.concatenate([actions, actions])
    assert set(stats) == {"action", "proprio", "num_transitions", "num_trajectories"}
    assert set(stats["action"]) == {"mean", "std", "min", "max", "p01", "p99", "mask"}
    assert set(stats["proprio"]) == {"mean", "std", "min", "max", "p01", "p99"}
    assert stats["action"]["mask"] == [True] * 6 + [False]
    np.testing.assert_allclose(stats["action"]["mean"], both.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats["action"]["std"], both.std(0), atol=1e-5)
    np.testing.assert_allclose(stats["action"]["p01"], np.quantile(both, 0.01, axis=0), atol=1e-5)
    np.testing.assert_allclose(stats["action"]["p99"], np.quantile(both, 0.99, axis=0), atol=1e-5)
    assert (stats["num_transitions"], stats["num_trajectories"]) == (2 * n, 2)


def test_review_writes_video_and_plots(bags, tmp_path):
    out = tmp_path / "review"
    assert recording_cli(["review", str(bags[0]), "--out", str(out)]) == 0
    video = out / f"{bags[0].name}.mp4"
    meta, frames = read_video(video)
    assert len(frames) == int(DURATION * 10) and tuple(meta["size"]) == (W, H)
    # the overlay (white text on black boxes) is drawn over the uniform camera frame
    assert frames[5].max() > 200 and frames[5].min() < 20
    for name in ("actions.png", "gripper.png", "latency.png", "safety.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["instruction"] == "pick up the spoon" and summary["outcome"] == "success"
