"""Crash safety of episode bags: SIGKILL mid-episode loses at most the last second, and a
full disk or a removed directory is a clear error that keeps the data."""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from rosbags.rosbag2.errors import ReaderError

from octo_ros.recording.bag import (
    EpisodeBagWriter,
    EpisodeInfo,
    RecordingError,
    TopicSpec,
    is_complete,
    mcap_file_of,
    read_episode_metadata,
    repair_bag,
    unfinished_bags,
)
from octo_ros.recording.types import recording_types
from octo_ros_msgs.msg import ActionChunk
from octo_ros_msgs.srv import StartEpisode


def read_both(bag: Path) -> tuple[dict[str, list], dict[str, list]]:
    by_rosbags: dict[str, list] = {}
    with AnyReader([bag]) as reader:
        for conn, _, raw in reader.messages():
            by_rosbags.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    by_mcap: dict[str, list] = {}
    with open(mcap_file_of(bag), "rb") as f:
        for _, channel, _, msg in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            by_mcap.setdefault(channel.topic, []).append(msg)
    return by_rosbags, by_mcap


def test_sigkill_mid_episode_loses_at_most_one_second(ros, tmp_path):
    out = tmp_path / "bags"
    rec = ros.spawn_module("recorder", "octo_ros.ros.nodes.recorder", params={
        "topics": ["/action_chunk"], "topic_types": ["octo_ros_msgs/msg/ActionChunk"], "output_dir": str(out),
        "robot": "ur5", "checkpoint_id": "ckpt-7", "seed": 7})
    node = ros.node("policy_stub")
    pub = node.create_publisher(ActionChunk, "/action_chunk", 100)
    ros.wait_for(lambda: pub.get_subscription_count() >= 1, 20, "the recorder's subscription")
    response = ros.call(node.create_client(StartEpisode, "/recorder/start_episode"),
                        StartEpisode.Request(instruction="push the button"), timeout=15)
    assert response.success, response.message
    bag = Path(response.bag_path)

    published: list[tuple[int, float]] = []  # (sequence, monotonic time published)
    stop = threading.Event()

    def publish():
        seq = 0
        while not stop.is_set():
            msg = ActionChunk(sequence=seq, horizon=4, action_dim=7, actions=[0.01 * seq] * 28)
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            published.append((seq, time.monotonic()))
            seq += 1
            time.sleep(0.02)

    thread = threading.Thread(target=publish, name="publisher")
    thread.start()
    time.sleep(2.0)
    os.killpg(rec.proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    rec.proc.wait()
    stop.set()
    thread.join()
    assert rec.proc.returncode == -signal.SIGKILL

    # What a killed writer leaves: no metadata.yaml, no MCAP summary/footer.
    assert not is_complete(bag) and unfinished_bags(out) == [bag]
    with pytest.raises((ReaderError, Exception)):
        with AnyReader([bag]):
            pass

    report = repair_bag(bag)
    assert is_complete(bag) and unfinished_bags(out) == []
    by_rosbags, by_mcap = read_both(bag)
    for msgs in (by_rosbags, by_mcap):
        seqs = [m.sequence for m in msgs["/action_chunk"]]
        assert seqs == list(range(len(seqs))), "messages kept in order, none missing in between"
        lost = [(s, t) for s, t in published if s >= len(seqs) and t < killed_at]
        assert lost, "the kill happened mid-stream"
        # every message published more than one second before the kill is in the bag
        assert killed_at - lost[0][1] <= 1.0, f"lost {killed_at - lost[0][1]:.2f} s before the kill"
        start = json.loads(msgs["/episode/metadata"][0].data)
        assert start["phase"] == "start" and start["checkpoint_id"] == "ckpt-7" and start["seed"] == 7
        assert start["instruction"] == "push the button"
    meta = read_episode_metadata(bag)
    assert meta["outcome"] == "incomplete" and meta["repaired"] and meta["robot"] == "ur5"
    assert report.messages == sum(len(v) for v in by_rosbags.values())


def _writer(tmp_path, **kw) -> EpisodeBagWriter:
    types = recording_types()
    w = EpisodeBagWriter(tmp_path / "bags", EpisodeInfo(robot="aloha", instruction="fold"),
                         [TopicSpec("/chunk", "octo_ros_msgs/msg/ActionChunk")], flush_period=0.0, types=types, **kw)
    for i in range(5):
        w.write("/chunk", time.time_ns(), serialize_message(ActionChunk(sequence=i, actions=[float(i)] * 14)))
    return w


def test_stop_with_full_disk_is_an_error_that_keeps_the_data(tmp_path):
    w = _writer(tmp_path)
    # The disk fills up: from now on the bag file's descriptor writes to /dev/full (ENOSPC).
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, w._file.fileno())
    os.close(full)
    with pytest.raises(RecordingError, match="disk full") as err:
        w.close("success")
    assert "octo-ros repair" in str(err.value)
    report = repair_bag(w.path)  # after space is freed, everything flushed before is there
    by_rosbags, by_mcap = read_both(w.path)
    for msgs in (by_rosbags, by_mcap):
        assert [m.sequence for m in msgs["/chunk"]] == [0, 1, 2, 3, 4]
    assert report.topics["/chunk"] == 5


def test_stop_with_directory_gone_is_an_error_and_restores_the_data(tmp_path):
    w = _writer(tmp_path)
    shutil.rmtree(w.path)
    with pytest.raises(RecordingError, match="directory gone") as err:
        w.close("success")
    assert "restored" in str(err.value)
    repair_bag(w.path)
    by_rosbags, by_mcap = read_both(w.path)
    for msgs in (by_rosbags, by_mcap):
        assert [m.sequence for m in msgs["/chunk"]] == [0, 1, 2, 3, 4]


def test_unwritable_output_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RecordingError, match="cannot create output directory"):
        EpisodeBagWriter(blocker / "bags", EpisodeInfo(robot="x"), [])
    with pytest.raises(RecordingError, match="no definition for nonexistent_msgs/msg/Foo"):
        EpisodeBagWriter(tmp_path / "bags", EpisodeInfo(robot="x"), [TopicSpec("/foo", "nonexistent_msgs/msg/Foo")])
