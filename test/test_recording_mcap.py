"""The MCAP file of a recorded episode carries what rosbag2's MCAP storage plugin writes
(ros2/rosbag2 ``rosbag2_storage_mcap/src/mcap_storage.cpp``): profile ``ros2``, per-channel
metadata ``offered_qos_profiles`` and ``topic_type_hash``, a ``rosbag2`` metadata record whose
``serialized_metadata`` names a real ``ros_distro``, chunk and summary CRCs.

Checked with a record walker written here from the MCAP specification (mcap.dev/spec),
independent of the writer, and with rosbags' reader; a repaired bag must be as good."""
from __future__ import annotations

import re
import struct
import time
import zlib
from pathlib import Path

import pytest
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from ruamel.yaml import YAML
from sensor_msgs.msg import JointState

from octo_ros.recording.bag import EpisodeBagWriter, EpisodeInfo, TopicSpec, mcap_file_of, repair_bag
from octo_ros.recording.reading import deserialize
from octo_ros.recording.types import recording_types
from octo_ros_msgs.msg import ActionChunk

MAGIC = b"\x89MCAP0\r\n"
ROS_DISTROS = {"humble", "iron", "jazzy", "kilted", "lyrical", "rolling"}
TOPICS = {"/joint_states": "sensor_msgs/msg/JointState", "/action_chunk": "octo_ros_msgs/msg/ActionChunk"}


class Cursor:
    """Little-endian MCAP primitives over a bytes object."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        assert len(out) == n, "record runs past its end"
        self.pos += n
        return out

    def u16(self): return struct.unpack("<H", self.take(2))[0]
    def u32(self): return struct.unpack("<I", self.take(4))[0]
    def u64(self): return struct.unpack("<Q", self.take(8))[0]
    def string(self): return self.take(self.u32()).decode()

    def string_map(self) -> dict[str, str]:
        end = self.u32() + self.pos
        out = {}
        while self.pos < end:
            key = self.string()
            out[key] = self.string()
        return out


def records(data: bytes, start: int, end: int):
    c = Cursor(data, start)
    while c.pos < end:
        opcode = c.take(1)[0]
        length = c.u64()
        yield opcode, c.pos - 9, Cursor(c.take(length))


def walk(mcap: Path) -> dict:
    """Every record of the file, checked against the spec's framing and CRC rules."""
    data = mcap.read_bytes()
    assert data[:8] == MAGIC and data[-8:] == MAGIC
    out = {"header": None, "chunks": [], "channels": {}, "schemas": {}, "metadata": {}, "messages": 0,
           "data_end_crc": None, "footer": None}

    def content(opcode, rec):
        if opcode == 0x01:
            out["header"] = (rec.string(), rec.string())
        elif opcode == 0x03:
            sid, name, enc = rec.u16(), rec.string(), rec.string()
            out["schemas"][sid] = (name, enc, rec.take(rec.u32()))
        elif opcode == 0x04:
            cid, sid, topic, enc = rec.u16(), rec.u16(), rec.string(), rec.string()
            out["channels"][cid] = {"schema": sid, "topic": topic, "encoding": enc, "metadata": rec.string_map()}
        elif opcode == 0x05:
            out["messages"] += 1

    for opcode, offset, rec in records(data, 8, len(data) - 8):
        if opcode == 0x06:  # Chunk
            _start, _end, size, crc = rec.u64(), rec.u64(), rec.u64(), rec.u32()
            compression = rec.string()
            body = rec.take(rec.u64())
            assert compression == "", "rosbag2's default: uncompressed chunks"
            assert len(body) == size
            out["chunks"].append((crc, zlib.crc32(body)))
            for inner, _, inner_rec in records(body, 0, len(body)):
                content(inner, inner_rec)
        elif opcode == 0x0C:  # Metadata
            name = rec.string()
            out["metadata"][name] = rec.string_map()
        elif opcode == 0x0F:
            out["data_end_crc"] = rec.u32()
        elif opcode == 0x02:  # Footer: the summary CRC covers summary start .. footer's summary_offset_start
            summary_start, _summary_offset_start, summary_crc = rec.u64(), rec.u64(), rec.u32()
            covered = data[summary_start:offset + 1 + 8 + 16]
            out["footer"] = (summary_start, summary_crc, zlib.crc32(covered))
        elif opcode in (0x01, 0x03, 0x04, 0x05):
            content(opcode, rec)
    return out


def record(out: Path) -> Path:
    w = EpisodeBagWriter(out, EpisodeInfo(robot="widowx", instruction="pick"),
                         [TopicSpec(t, ty) for t, ty in TOPICS.items()], name="episode", flush_period=0.0)
    t0 = time.time_ns()
    for i in range(20):
        js = JointState(name=["waist"], position=[0.1 * i])
        w.write("/joint_states", t0 + i * 10_000_000, serialize_message(js))
        if i % 5 == 0:
            chunk = ActionChunk(sequence=i, horizon=1, action_dim=1, step_period=0.2, actions=[0.5], normalized=[0.0],
                                dimension_names=["x"], source="teleop")
            w.write("/action_chunk", t0 + i * 10_000_000 + 1, serialize_message(chunk))
    return w


def check_like_rosbag2(bag: Path, expect_counts: dict[str, int]) -> None:
    f = walk(mcap_file_of(bag))
    assert f["header"][0] == "ros2"
    assert f["chunks"], "messages are chunked"
    for stored, computed in f["chunks"]:
        assert stored != 0 and stored == computed, "chunk CRC (uncompressed_crc) present and right"
    summary_start, stored, computed = f["footer"]
    assert stored != 0 and stored == computed, "summary CRC present and right"
    assert f["data_end_crc"] is not None

    types = recording_types()
    meta = YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    yaml_hashes = {t["topic_metadata"]["name"]: t["topic_metadata"]["type_description_hash"]
                   for t in meta["topics_with_message_count"]}
    topics = {c["topic"]: c for c in f["channels"].values()}
    assert set(topics) == set(TOPICS) | {"/episode/metadata"}
    for topic, channel in topics.items():
        name, encoding, _ = f["schemas"][channel["schema"]]
        assert channel["encoding"] == "cdr" and encoding == "ros2msg"
        assert set(channel["metadata"]) == {"offered_qos_profiles", "topic_type_hash"}, topic
        type_hash = channel["metadata"]["topic_type_hash"]
        assert re.fullmatch(r"RIHS01_[0-9a-f]{64}", type_hash)
        assert type_hash == types.describe(name)[1] == yaml_hashes[topic]

    assert set(f["metadata"]) == {"rosbag2"}
    serialized = YAML(typ="safe").load(f["metadata"]["rosbag2"]["serialized_metadata"])
    assert serialized["ros_distro"] in ROS_DISTROS and meta["ros_distro"] == serialized["ros_distro"]
    assert serialized["version"] == meta["version"] == 8
    assert serialized["custom_data"]["octo_ros.robot"] == "widowx"

    with AnyReader([bag]) as reader:
        counts = {}
        for conn, _, raw in reader.messages():
            deserialize(reader, raw, conn.msgtype)
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
    assert counts == expect_counts
    assert f["messages"] == sum(expect_counts.values())


def test_episode_mcap_has_what_rosbag2_writes(tmp_path):
    bag = record(tmp_path).close("success")
    check_like_rosbag2(bag, {"/joint_states": 20, "/action_chunk": 4, "/episode/metadata": 2})


def test_repaired_mcap_has_what_rosbag2_writes(tmp_path):
    w = record(tmp_path)
    w.flush()
    w.abort()  # as after a crash: no summary, no metadata.yaml
    bag = w.path
    report = repair_bag(bag)
    assert report.messages == 25
    check_like_rosbag2(bag, {"/joint_states": 20, "/action_chunk": 4, "/episode/metadata": 1})


def test_ros_distro_is_the_environment_s(tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    bag = record(tmp_path).close("success")
    assert YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["ros_distro"] == "jazzy"
    with pytest.raises(AssertionError):  # sanity: the walker notices a broken chunk CRC
        data = bytearray(mcap_file_of(bag).read_bytes())
        i = data.index(b"waist")
        data[i] ^= 0x20
        broken = tmp_path / "broken.mcap"
        broken.write_bytes(bytes(data))
        for stored, computed in walk(broken)["chunks"]:
            assert stored == computed
