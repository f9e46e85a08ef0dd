"""Export (LeRobot v3.0, RLDS/TFDS, Octo statistics) and review of recorded episode bags,
checked field by field against the format descriptions (../shared/reference/robots.md §5.4,
finetune.md §B-C, octo_spec.md §4.5). The TFRecord files are read back with a reader written
here from the TFRecord and protobuf specifications, independent of the writer."""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import cv2
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


# --------------------------------------------------------------------------- an independent TFRecord reader


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C straight from its definition (reflected polynomial 0x82F63B78), bit by bit."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def unmask(masked: int) -> int:
    r = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((r >> 17) | (r << 15)) & 0xFFFFFFFF


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message."""
    pos = 0
    while pos < len(buf):
        tag, pos = varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 2:
            size, pos = varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        else:
            raise AssertionError(f"wire type {wire}")
        yield number, wire, value


def parse_example(buf: bytes):
    """tf.train.Example → ({key: floats}, {key: int64s}, {key: bytes list})."""
    floats, ints, strings = {}, {}, {}
    ((number, _, features),) = list(fields(buf))
    assert number == 1
    for number, _, entry in fields(features):
        assert number == 1
        parts = {n: v for n, _, v in fields(entry)}
        key = parts[1].decode()
        ((kind, _, lst),) = list(fields(parts[2]))
        values = list(fields(lst))
        if kind == 1:
            strings[key] = [v for _, _, v in values]
        elif kind == 2:
            floats[key] = [x for _, w, v in values for x in (struct.unpack(f"<{len(v) // 4}f", v) if w == 2 else struct.unpack("<f", v))]
        else:
            out = []
            for _, w, v in values:
                if w == 2:
                    pos = 0
                    while pos < len(v):
                        x, pos = varint(v, pos)
                        out.append(x - (1 << 64) if x >> 63 else x)
                else:
                    out.append(v - (1 << 64) if v >> 63 else v)
            ints[key] = out
    return floats, ints, strings


def read_tfrecord(path: Path):
    """Every record of a TFRecord file, CRCs checked, parsed as tf.train.Example."""
    data = path.read_bytes()
    pos, out = 0, []
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        assert unmask(length_crc) == crc32c_bitwise(header), "length CRC"
        payload = data[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        assert unmask(data_crc) == crc32c_bitwise(payload), "data CRC"
        out.append(parse_example(payload))
        pos += 16 + length
    assert pos == len(data)
    return out


def test_the_reader_is_right_and_notices_corruption(tmp_path):
    assert crc32c_bitwise(b"123456789") == 0xE3069283  # the CRC-32C check value
    from octo_ros.recording.tfrecord import TFRecordWriter, crc32c, encode_example

    rng = np.random.default_rng(0)
    for size in (0, 1, 63, 64, 65, 4096 * 64 + 5, 70_001):  # one lane, many lanes, lanes plus a tail
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert crc32c(data) == crc32c_bitwise(data), size

    path = tmp_path / "x.tfrecord"
    with TFRecordWriter(path) as w:
        w.write(encode_example({"a": np.array([1.5, -2.0], np.float32), "b": np.array([-3, 0, 2**40]),
                                "c": ["é", b"\x00\xff"], "d": np.array([True, False])}))
    (ex,) = read_tfrecord(path)
    assert ex == ({"a": [1.5, -2.0]}, {"b": [-3, 0, 2**40], "d": [1, 0]}, {"c": ["é".encode(), b"\x00\xff"]})
    data = bytearray(path.read_bytes())
    data[20] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="data CRC"):
        read_tfrecord(path)


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
                      "episode_index", "index", "task_index", "source", "episode_label"}
    assert f["source"] == f["episode_label"] == {"dtype": "string", "shape": [1], "names": None}
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
    assert set(data.column_names) == {"observation.state", "action", "timestamp", "frame_index", "episode_index", "index",
                                      "task_index", "source", "episode_label"}
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
    assert d["source"] == ["policy"] * (2 * n) and d["episode_label"] == ["success"] * n + ["failure"] * n

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


def test_export_rlds_is_a_tfds_dataset_octo_reads(bags, tmp_path):
    out = tmp_path / "rlds"
    assert recording_cli(["export", "--format", "rlds", str(bags[0]), str(bags[1]), str(out), "--quiet",
                          "--image-format", "png"]) == 0
    actions, states, colours = expected_episode()
    n = len(actions)
    root = out / "octo_ros_widowx" / "1.0.0"  # tfds.builder("octo_ros_widowx", data_dir=out)
    info = json.loads((root / "dataset_info.json").read_text())
    assert info["name"] == "octo_ros_widowx" and info["version"] == "1.0.0" and info["fileFormat"] == "tfrecord"
    (split,) = info["splits"]
    assert split["name"] == "train" and split["filepathTemplate"] == "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    shards = sorted(p.name for p in root.glob("*.tfrecord-*"))
    assert shards == [f"octo_ros_widowx-train.tfrecord-{i:05d}-of-{len(shards):05d}" for i in range(len(shards))]
    assert sum(int(x) for x in split["shardLengths"]) == 2 and len(split["shardLengths"]) == len(shards)
    assert int(split["numBytes"]) == sum((root / s).stat().st_size for s in shards)

    features = json.loads((root / "features.json").read_text())
    assert features["pythonClassName"] == "tensorflow_datasets.core.features.features_dict.FeaturesDict"
    steps_feature = features["featuresDict"]["features"]["steps"]
    assert steps_feature["pythonClassName"] == "tensorflow_datasets.core.features.dataset_feature.Dataset"
    assert steps_feature["sequence"]["length"] == "-1"
    step = steps_feature["sequence"]["feature"]["featuresDict"]["features"]
    assert set(step) == {"observation", "action", "language_instruction", "is_first", "is_last", "is_terminal",
                         "reward", "discount", "source"}
    obs = step["observation"]["featuresDict"]["features"]
    assert obs["cam"]["pythonClassName"].endswith("image_feature.Image")
    assert obs["cam"]["image"] == {"shape": {"dimensions": [str(H), str(W), "3"]}, "dtype": "uint8", "encodingFormat": "png"}
    assert obs["state"]["tensor"] == {"shape": {"dimensions": ["7"]}, "dtype": "float32", "encoding": "none"}
    assert step["action"]["tensor"]["shape"] == {"dimensions": ["7"]}
    assert step["is_first"]["pythonClassName"].endswith("scalar.Scalar") and step["is_first"]["tensor"]["dtype"] == "bool"
    assert step["reward"]["tensor"] == {"shape": {}, "dtype": "float32", "encoding": "none"}
    assert step["language_instruction"]["pythonClassName"].endswith("text_feature.Text")

    examples = [ex for s in shards for ex in read_tfrecord(root / s)]
    assert len(examples) == 2
    for e, (ex, success) in enumerate(zip(examples, (True, False))):
        floats, ints, strings = ex
        assert set(floats) | set(ints) | set(strings) == {
            "steps/observation/cam", "steps/observation/state", "steps/action", "steps/language_instruction",
            "steps/is_first", "steps/is_last", "steps/is_terminal", "steps/reward", "steps/discount", "steps/source",
            "episode_metadata/file_path", "episode_metadata/label", "episode_metadata/octo_ros_metadata"}
        np.testing.assert_allclose(np.array(floats["steps/action"]).reshape(n, 7), actions, atol=1e-6)
        np.testing.assert_allclose(np.array(floats["steps/observation/state"]).reshape(n, 7), states, atol=1e-6)
        frames = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED) for b in strings["steps/observation/cam"]]
        assert all(f.shape == (H, W, 3) for f in frames)
        assert [int(f[0, 0, 0]) for f in frames] == colours  # PNG: lossless
        assert strings["steps/language_instruction"] == [["pick up the spoon", "open the drawer"][e].encode()] * n
        assert ints["steps/is_first"] == [1] + [0] * (n - 1)
        assert ints["steps/is_last"] == [0] * (n - 1) + [1]
        assert ints["steps/is_terminal"] == [0] * (n - 1) + [int(success)]
        assert floats["steps/reward"] == [0.0] * (n - 1) + [float(success)]
        assert floats["steps/discount"] == [1.0] * n
        assert strings["steps/source"] == [b"policy"] * n
        assert strings["episode_metadata/label"] == [b"success" if success else b"failure"]
        assert strings["episode_metadata/file_path"] == [str(bags[e]).encode()]

    stats = json.loads((root / "dataset_statistics.json").read_text())
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


def test_export_rlds_jpeg_images(bags, tmp_path):
    out = tmp_path / "rlds"
    assert recording_cli(["export", "--format", "rlds", str(bags[0]), str(out), "--quiet", "--name", "spoon_demos"]) == 0
    root = out / "spoon_demos" / "1.0.0"
    obs = json.loads((root / "features.json").read_text())["featuresDict"]["features"]["steps"]["sequence"]["feature"]
    assert obs["featuresDict"]["features"]["observation"]["featuresDict"]["features"]["cam"]["image"]["encodingFormat"] == "jpeg"
    (ex,) = [ex for s in root.glob("spoon_demos-train.tfrecord-*") for ex in read_tfrecord(s)]
    jpegs = ex[2]["steps/observation/cam"]
    assert all(b[:3] == b"\xff\xd8\xff" for b in jpegs)
    _, _, colours = expected_episode()
    decoded = [int(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[H // 2, W // 2, 0]) for b in jpegs]
    np.testing.assert_allclose(decoded, colours, atol=3)


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


def record_demo(out: Path, label: str, policy_until: float = 0.0) -> Path:
    """A demonstration as a teleop node records it: a horizon-1 chunk every 0.2 s, source teleop
    (value = 100 + index), on its own topic; before ``policy_until`` (s) a policy drove
    (4-step chunks, value = index), then the person took over."""
    topics = [TopicSpec("/cam/image_raw", "sensor_msgs/msg/Image", "sensor"),
              TopicSpec("/joint_states", "sensor_msgs/msg/JointState"),
              TopicSpec("/action_chunk", "octo_ros_msgs/msg/ActionChunk"),
              TopicSpec("/teleop/action_chunk", "octo_ros_msgs/msg/ActionChunk")]
    w = EpisodeBagWriter(out, EpisodeInfo(robot="widowx", instruction="pick up the spoon"), topics,
                         name=f"demo_{label}_{policy_until}")
    T = time.time_ns()
    msgs = []
    for m in range(int(DURATION * 10)):
        t = T + m * S // 10 + 5_000_000
        img = Image(height=H, width=W, encoding="rgb8", step=3 * W, data=bytes(np.zeros((H, W, 3), np.uint8)))
        img.header.stamp = _time(t)
        msgs.append((t, "/cam/image_raw", img))
        js = JointState(name=JOINTS, position=[0.0] * 7)
        js.header.stamp = _time(t)
        msgs.append((t + 1, "/joint_states", js))
    for i in range(int(DURATION / 0.2)):
        t = T + i * S // 5 + 13_000_000
        policy = i * 0.2 < policy_until
        horizon = 4 if policy else 1
        chunk = ActionChunk(sequence=i, horizon=horizon, action_dim=7, step_period=0.2, dimension_names=NAMES,
                            actions=[float(i if policy else 100 + i)] * 7 * horizon, normalized=[0.0] * 7 * horizon,
                            source="policy" if policy else "teleop")
        chunk.header.stamp = _time(t)
        msgs.append((t, "/action_chunk" if policy else "/teleop/action_chunk", chunk))
    for t, topic, msg in sorted(msgs, key=lambda x: x[0]):
        w.write(topic, t, serialize_message(msg))
    return w.close(label)


def test_demonstrations_export_with_source_and_label_and_discards_are_skipped(tmp_path):
    out = tmp_path / "bags"
    demo = record_demo(out, "success")
    takeover = record_demo(out, "failure", policy_until=0.9)
    discarded = record_demo(out, "discard")
    dataset = tmp_path / "lerobot"
    assert recording_cli(["export", str(demo), str(discarded), str(takeover), "--format", "lerobot", str(dataset),
                          "--quiet", "--codec", "libx264"]) == 0
    info = json.loads((dataset / "meta/info.json").read_text())
    assert info["total_episodes"] == 2 and info["fps"] == 5
    d = pq.read_table(dataset / "data/chunk-000/file-000.parquet").to_pydict()
    ep = np.array(d["episode_index"])
    action = np.array(d["action"])[:, 0]
    n0 = int((ep == 0).sum())
    # the demonstration: every step commanded by the person, one chunk per step
    assert d["source"][:n0] == ["teleop"] * n0 and d["episode_label"][:n0] == ["success"] * n0
    np.testing.assert_array_equal(action[:n0], 100 + np.arange(n0))
    # the takeover: policy steps, then the person's
    src = np.array(d["source"][n0:])
    assert set(d["episode_label"][n0:]) == {"failure"}
    assert list(src) == ["policy"] * 5 + ["teleop"] * (len(src) - 5)
    np.testing.assert_array_equal(action[n0:][src == "teleop"], 100 + np.arange(5, len(src)))
    eps = pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["octo_ros/outcome"] for e in eps] == ["success", "failure"]

    rlds = tmp_path / "rlds"
    assert recording_cli(["export", str(demo), str(discarded), "--format", "rlds", str(rlds), "--quiet"]) == 0
    examples = [ex for s in sorted((rlds / "octo_ros_widowx/1.0.0").glob("*.tfrecord-*")) for ex in read_tfrecord(s)]
    assert len(examples) == 1
    floats, _, strings = examples[0]
    assert set(strings["steps/source"]) == {b"teleop"} and strings["episode_metadata/label"] == [b"success"]
    np.testing.assert_array_equal(np.array(floats["steps/action"]).reshape(-1, 7)[:, 0], 100 + np.arange(n0))

    with pytest.raises(SystemExit, match="labelled 'discard'"):
        recording_cli(["export", str(discarded), "--format", "lerobot", str(tmp_path / "none"), "--quiet"])


def test_only_the_source_the_adapter_executed_is_exported(tmp_path):
    """The policy keeps publishing after the operator switched the adapter to the teleop node
    (source parameter, reported in its diagnostics): the frames follow the adapter."""
    topics = [TopicSpec("/cam/image_raw", "sensor_msgs/msg/Image", "sensor"),
              TopicSpec("/action_chunk", "octo_ros_msgs/msg/ActionChunk"),
              TopicSpec("/teleop/action_chunk", "octo_ros_msgs/msg/ActionChunk"),
              TopicSpec("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray")]
    w = EpisodeBagWriter(tmp_path, EpisodeInfo(robot="widowx", instruction="pick"), topics, name="switch")
    T = time.time_ns()
    msgs = []
    for m in range(int(DURATION * 10)):
        img = Image(height=H, width=W, encoding="rgb8", step=3 * W, data=bytes(H * W * 3))
        img.header.stamp = _time(T + m * S // 10)
        msgs.append((T + m * S // 10 + 5_000_000, "/cam/image_raw", img))
    for i in range(int(DURATION / 0.2)):
        t = T + i * S // 5 + 13_000_000
        policy = ActionChunk(sequence=i, horizon=1, action_dim=7, step_period=0.2, dimension_names=NAMES,
                             actions=[float(i)] * 7, normalized=[0.0] * 7)  # source empty: a policy's
        teleop = ActionChunk(sequence=i, horizon=1, action_dim=7, step_period=0.2, dimension_names=NAMES,
                             actions=[100.0 + i] * 7, normalized=[0.0] * 7, source="teleop")
        policy.header.stamp = teleop.header.stamp = _time(t)
        msgs += [(t, "/action_chunk", policy), (t - 1_000_000, "/teleop/action_chunk", teleop)]
    for k, source in enumerate(["policy", "policy", "teleop", "teleop"]):  # the switch at 1.0 s
        diag = DiagnosticArray(status=[DiagnosticStatus(name="widowx_adapter", message="move",
                                                        values=[KeyValue(key="source", value=source)])])
        msgs.append((T + k * S // 2, "/diagnostics", diag))
    for t, topic, msg in sorted(msgs, key=lambda x: x[0]):
        w.write(topic, t, serialize_message(msg))
    bag = w.close("success")

    out = tmp_path / "lerobot"
    assert recording_cli(["export", str(bag), "--format", "lerobot", str(out), "--quiet", "--codec", "libx264"]) == 0
    d = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    t = np.array(d["timestamp"]) + 0.013  # frame times since T: the first chunk at 13 ms
    action = np.array(d["action"])[:, 0]
    before = t < 1.0 - 1e-6
    assert before.any() and (~before).any()
    assert set(np.array(d["source"])[before]) == {"policy"} and set(np.array(d["source"])[~before]) == {"teleop"}
    np.testing.assert_array_equal(action[before], np.arange(before.sum()))
    np.testing.assert_array_equal(action[~before], 100 + np.arange(before.sum(), len(action)))
