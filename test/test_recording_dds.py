"""The recorder node records live DDS topics into an MCAP bag that two independent readers
(rosbags' AnyReader and the mcap library's ROS 2 reader) read back completely."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import KeyValue
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from octo_ros.recording.bag import is_complete, mcap_file_of, read_episode_metadata
from octo_ros_msgs.msg import ActionChunk, PolicyStatus
from octo_ros_msgs.srv import StartEpisode, StopEpisode

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
TOPICS = ["/cam/image_raw", "/joint_states", "/action_chunk", "/policy/status", "/instruction"]
TYPES = ["sensor_msgs/msg/Image", "sensor_msgs/msg/JointState", "octo_ros_msgs/msg/ActionChunk",
         "octo_ros_msgs/msg/PolicyStatus", "std_msgs/msg/String"]
EVIDENCE = {
    "robot": "widowx", "checkpoint_id": "octo-small-1.5@step300000", "checkpoint_hash": "sha256:abc123",
    "dataset_statistics_key": "bridge_dataset", "adapter_config": "widowx.yaml max_step_translation_m=0.05",
    "gripper_convention": "model 1=open 0=closed; interbotix PWM", "seed": 42,
}


def stamp(node):
    return node.get_clock().now().to_msg()


def make_image(node, i):
    msg = Image(height=4, width=6, encoding="rgb8", step=18)
    msg.header.stamp = stamp(node)
    msg.header.frame_id = f"frame{i}"
    msg.data = bytes(((np.arange(72) + i) % 256).astype(np.uint8))
    return msg


def make_chunk(node, i):
    msg = ActionChunk(sequence=i, model_id="octo-small-1.5", task="language: pick", horizon=4, action_dim=7,
                      step_period=0.2, dimension_names=["x", "y", "z", "roll", "pitch", "yaw", "gripper"])
    msg.header.stamp = stamp(node)
    msg.actions = [float(i + k / 100) for k in range(28)]
    msg.normalized = [0.5] * 28
    msg.inference_latency = 0.05 + i / 1000
    return msg


def test_record_episode_from_live_topics(ros, tmp_path):
    out = tmp_path / "bags"
    layout = {"joint_state": {"sources": [{"topic": "joint_states", "prefix": ""}], "joints": ["waist", "shoulder"]},
              "proprio_normalization": {}}
    rec = ros.spawn_module("recorder", "octo_ros.ros.nodes.recorder", params={
        "topics": TOPICS, "topic_types": TYPES, "output_dir": str(out), "flush_period": 0.2, **EVIDENCE,
        "proprio_layout": "'" + json.dumps(layout) + "'"})
    node = ros.node("rollout")
    pubs = {
        "/cam/image_raw": node.create_publisher(Image, "/cam/image_raw", qos_profile_sensor_data),
        "/joint_states": node.create_publisher(JointState, "/joint_states", 10),
        "/action_chunk": node.create_publisher(ActionChunk, "/action_chunk", 10),
        "/policy/status": node.create_publisher(PolicyStatus, "/policy/status", 10),
        "/instruction": node.create_publisher(String, "/instruction", LATCHED),
    }
    ros.wait_for(lambda: all(p.get_subscription_count() >= 1 for p in pubs.values()), 20, "the recorder's subscriptions")
    pubs["/instruction"].publish(String(data="pick up the spoon"))  # latched: before the episode
    start = node.create_client(StartEpisode, "/recorder/start_episode")
    stop = node.create_client(StopEpisode, "/recorder/stop_episode")

    rejected = ros.call(stop, StopEpisode.Request(outcome="success"), timeout=15)
    assert not rejected.success and "no episode" in rejected.message

    response = ros.call(start, StartEpisode.Request(
        instruction="", metadata=[KeyValue(key="operator", value="ada"), KeyValue(key="scene", value="sink")]))
    assert response.success, response.message
    bag = Path(response.bag_path)
    assert bag.parent == out and bag.name.startswith("widowx_") and len(bag.name) == len("widowx_20250101-120000")
    again = ros.call(start, StartEpisode.Request(instruction="x"))
    assert not again.success and "already recording" in again.message

    sent = {t: [] for t in TOPICS}
    for i in range(8):
        msgs = {
            "/cam/image_raw": make_image(node, i),
            "/joint_states": JointState(name=["waist", "shoulder"], position=[0.1 * i, -0.2 * i]),
            "/action_chunk": make_chunk(node, i),
            "/policy/status": PolicyStatus(state=PolicyStatus.RUNNING, instruction="pick up the spoon",
                                           task_kind="language", chunks_published=i),
        }
        msgs["/joint_states"].header.stamp = stamp(node)
        for topic, msg in msgs.items():
            pubs[topic].publish(msg)
            sent[topic].append(msg)
        time.sleep(0.03)
    time.sleep(0.5)
    response = ros.call(stop, StopEpisode.Request(outcome="success", metadata=[KeyValue(key="note", value="clean grasp")]))
    assert response.success, response.message
    assert Path(response.bag_path) == bag and is_complete(bag)
    rec.stop()

    expected_counts = {t: len(v) for t, v in sent.items()} | {"/instruction": 1, "/episode/metadata": 2}

    # reader 1: rosbags AnyReader on the bag directory (metadata.yaml + MCAP)
    got = {}
    with AnyReader([bag]) as reader:
        digests = {c.topic: c.digest for c in reader.connections}
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, t_ns, raw in reader.messages():
            got.setdefault(conn.topic, []).append((t_ns, reader.deserialize(raw, conn.msgtype)))
    assert {t: len(v) for t, v in got.items()} == expected_counts
    assert types == dict(zip(TOPICS, TYPES)) | {"/episode/metadata": "std_msgs/msg/String"}
    # header stamps kept; bag time is receive time (≥ header stamp)
    for topic in ("/cam/image_raw", "/joint_states", "/action_chunk"):
        for (t_ns, m), s in zip(got[topic], sent[topic]):
            assert (m.header.stamp.sec, m.header.stamp.nanosec) == (s.header.stamp.sec, s.header.stamp.nanosec)
            assert t_ns >= s.header.stamp.sec * 10**9 + s.header.stamp.nanosec
    assert [bytes(m.data) for _, m in got["/cam/image_raw"]] == [bytes(s.data) for s in sent["/cam/image_raw"]]
    assert [list(m.actions) for _, m in got["/action_chunk"]] == [pytest.approx(list(s.actions)) for s in sent["/action_chunk"]]
    assert [list(m.position) for _, m in got["/joint_states"]] == [list(s.position) for s in sent["/joint_states"]]
    assert [m.chunks_published for _, m in got["/policy/status"]] == list(range(8))
    # the type hashes in the bag (metadata.yaml and, as rosbag2 writes them, the MCAP channels'
    # topic_type_hash) are the ones the publishers advertise on the graph
    with open(mcap_file_of(bag), "rb") as f:
        channel_hashes = {c.topic: c.metadata.get("topic_type_hash") for c in make_reader(f).get_summary().channels.values()}
    for topic in ("/cam/image_raw", "/joint_states", "/action_chunk"):
        info = node.get_publishers_info_by_topic(topic)[0]
        assert digests[topic] == channel_hashes[topic] == str(info.topic_type_hash), topic

    # reader 2: the mcap library on the .mcap file alone (definitions from the embedded schemas)
    mcap_msgs = {}
    with open(mcap_file_of(bag), "rb") as f:
        for _, channel, _, ros_msg in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            mcap_msgs.setdefault(channel.topic, []).append(ros_msg)
    assert {t: len(v) for t, v in mcap_msgs.items()} == expected_counts
    assert [list(m.actions) for m in mcap_msgs["/action_chunk"]] == [pytest.approx(list(s.actions)) for s in sent["/action_chunk"]]
    assert [bytes(m.data) for m in mcap_msgs["/cam/image_raw"]] == [bytes(s.data) for s in sent["/cam/image_raw"]]
    assert mcap_msgs["/instruction"][0].data == "pick up the spoon"

    # metadata: in metadata.yaml custom_data and on /episode/metadata
    meta = read_episode_metadata(bag)
    for key, value in EVIDENCE.items():
        assert meta[key] == value, key
    assert meta["instruction"] == "pick up the spoon"  # from the latched topic, request left it empty
    assert meta["operator"] == "ada" and meta["metadata"] == {"scene": "sink"}
    assert meta["outcome"] == "success" and meta["notes"] == {"note": "clean grasp"}
    assert meta["software_version"].startswith("octo_ros ")
    # the proprio layout, its topics resolved as the recorder's
    assert meta["proprio_layout"] == {**layout, "joint_state": {**layout["joint_state"],
                                                                "sources": [{"topic": "/joint_states", "prefix": ""}]}}
    phases = [json.loads(m.data) for m in mcap_msgs["/episode/metadata"]]
    assert [p["phase"] for p in phases] == ["start", "stop"]
    assert phases[0]["checkpoint_hash"] == "sha256:abc123" and phases[1]["outcome"] == "success"


def test_recorder_reports_topics_it_cannot_record_yet(ros, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    ros.spawn_module("recorder", "octo_ros.ros.nodes.recorder",
                     params={"topics": ["/nobody/publishes/this"], "output_dir": str(tmp_path)})
    statuses = []
    ros.node("diagnostics_reader").create_subscription(
        DiagnosticArray, "/diagnostics", lambda m: statuses.extend(s for s in m.status if s.name == "recorder"), 10)
    ros.wait_for(lambda: statuses, 15, "the recorder's diagnostics")
    assert statuses[-1].level == DiagnosticStatus.WARN
    assert "/nobody/publishes/this" in statuses[-1].message
