"""A rosbag2 bag with MCAP storage, written the way rosbag2's MCAP plugin writes it.

Facts from ros2/rosbag2 ``rosbag2_storage_mcap/src/mcap_storage.cpp`` (Jazzy/Kilted):

* MCAP profile ``ros2``; schema per message type (``ros2msg``: the definition text with its
  dependencies), channel per topic with message encoding ``cdr`` and the channel metadata
  ``offered_qos_profiles`` (the QoS YAML string) and ``topic_type_hash`` (``RIHS01_...``);
* uncompressed chunks (the plugin's default ``compression: None``), with chunk CRCs (the plugin
  turns them off by default, ``noChunkCRC``; we keep them: a torn or corrupted chunk is detected)
  and a summary CRC;
* a metadata record named ``rosbag2`` whose ``serialized_metadata`` is the bag metadata
  (what ``metadata.yaml`` holds under ``rosbag2_bagfile_information``), ``ros_distro`` included;
* ``metadata.yaml`` next to the file, version 8 (``offered_qos_profiles`` as a YAML string, the
  form Humble's parser reads).

The ``mcap`` library does the record framing; this module decides what goes in.
"""
from __future__ import annotations

import os
from io import StringIO
from pathlib import Path
from typing import BinaryIO

from mcap.writer import LIBRARY_IDENTIFIER, CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.interfaces import Qos
from rosbags.rosbag2.metadata import dump_qos_v8

from octo_ros.recording.types import BASE_STORE

BAG_VERSION = 8
CHUNK_SIZE = 1 << 20  # bytes: rosbag2's MCAP default


def ros_distro() -> str:
    """``$ROS_DISTRO`` (set by every sourced ROS 2 environment, what rosbag2 records), else the
    distro of the message definitions and type hashes we record with."""
    return os.environ.get("ROS_DISTRO") or BASE_STORE.name.split("_", 1)[1].lower()


class Rosbag2McapWriter:
    """``<path>/<path.name>.mcap`` + ``<path>/metadata.yaml``. Not thread safe.

    :meth:`flush` ends the current chunk and hands everything to the OS, so a killed process
    leaves a file whose complete records a stream reader recovers.
    """

    def __init__(self, path: Path, library: str = ""):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=False)
        self.mcap_path = self.path / f"{self.path.name}.mcap"
        self.file: BinaryIO = open(self.mcap_path, "xb")
        self._mcap = McapWriter(self.file, chunk_size=CHUNK_SIZE, compression=CompressionType.NONE, enable_crcs=True)
        self._mcap.start(profile="ros2", library=f"{library}; {LIBRARY_IDENTIFIER}" if library else LIBRARY_IDENTIFIER)
        self._schemas: dict[str, int] = {}
        self._topics: dict[str, dict] = {}  # topic -> channel id, type, qos text, hash, count
        self._start_ns: int | None = None
        self._end_ns = 0
        self.custom_data: dict[str, str] = {}

    def add_connection(self, topic: str, msgtype: str, msgdef: str, rihs01: str, offered_qos_profiles: str | list[Qos],
                       schema_encoding: str = "ros2msg", message_encoding: str = "cdr") -> None:
        """Declare a topic (once; a second call for the same topic is ignored)."""
        if topic in self._topics:
            return
        if msgtype not in self._schemas:
            self._schemas[msgtype] = self._mcap.register_schema(msgtype, schema_encoding, msgdef.encode())
        qos = offered_qos_profiles if isinstance(offered_qos_profiles, str) else dump_qos_v8(offered_qos_profiles)
        channel = self._mcap.register_channel(topic, message_encoding, self._schemas[msgtype],
                                              {"offered_qos_profiles": qos, "topic_type_hash": rihs01})
        self._topics[topic] = {"channel": channel, "type": msgtype, "qos": qos, "hash": rihs01,
                               "encoding": message_encoding, "count": 0}

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """One serialized message; ``timestamp_ns`` is the receive time (log and publish time)."""
        entry = self._topics[topic]
        self._mcap.add_message(entry["channel"], log_time=int(timestamp_ns), data=bytes(data),
                               publish_time=int(timestamp_ns), sequence=entry["count"])
        entry["count"] += 1
        self._start_ns = timestamp_ns if self._start_ns is None else min(self._start_ns, timestamp_ns)
        self._end_ns = max(self._end_ns, timestamp_ns)

    def flush(self) -> None:
        self._mcap.flush()

    def metadata(self) -> dict:
        """The bag metadata (``rosbag2_bagfile_information``)."""
        start = self._start_ns or 0
        duration = max(0, self._end_ns - start)
        count = sum(t["count"] for t in self._topics.values())
        return {
            "version": BAG_VERSION,
            "storage_identifier": "mcap",
            "relative_file_paths": [self.mcap_path.name],
            "duration": {"nanoseconds": duration},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": count,
            "topics_with_message_count": [
                {"topic_metadata": {"name": topic, "type": t["type"], "serialization_format": t["encoding"],
                                    "offered_qos_profiles": t["qos"], "type_description_hash": t["hash"]},
                 "message_count": t["count"]}
                for topic, t in self._topics.items()],
            "compression_format": "",
            "compression_mode": "",
            "files": [{"path": self.mcap_path.name, "starting_time": {"nanoseconds_since_epoch": start},
                       "duration": {"nanoseconds": duration}, "message_count": count}],
            "custom_data": dict(self.custom_data) or None,
            "ros_distro": ros_distro(),
        }

    def close(self) -> None:
        """Metadata record, summary, footer; then metadata.yaml (atomically)."""
        from ruamel.yaml import YAML

        yaml = YAML(typ="safe")
        yaml.default_flow_style = False
        info = self.metadata()
        text = StringIO()
        yaml.dump(info, text)
        self._mcap.add_metadata("rosbag2", {"serialized_metadata": text.getvalue()})
        self._mcap.finish()
        self.file.flush()
        self.file.close()
        text = StringIO()
        yaml.dump({"rosbag2_bagfile_information": info}, text)
        tmp = self.path / "metadata.yaml.tmp"
        tmp.write_text(text.getvalue(), "utf8")
        tmp.replace(self.path / "metadata.yaml")

    def abort(self) -> None:
        """Close the file as it is (no summary, no metadata.yaml: repairable)."""
        if not self.file.closed:
            self.file.close()
