"""Message definitions for recording: which text and type hash each recorded type carries.

The bag must describe every message it holds, so a reader without this package (or without
ROS) can decode it:

* the base is rosbags' typestore for ROS 2 **Kilted**, the distro of the rclpy runtime that
  publishes the bytes we record (standard ``sensor_msgs``/``std_msgs``/... definitions are
  identical from Humble on for the types used here; the RIHS01 type hashes are Kilted's and
  match what publishers advertise on the graph, see ``test_recording_dds.py``);
* ``octo_ros_msgs`` types are registered from the repository's own ``.msg`` files (or the
  installed ``share/octo_ros_msgs/msg``), so their definitions travel inside the bag;
* any other type (``interbotix_xs_msgs/msg/JointGroupCommand``, ...) is looked up as
  ``<prefix>/share/<pkg>/msg/<Name>.msg`` under ``$AMENT_PREFIX_PATH`` and ``sys.prefix``.

No rclpy here: this module is used by the recorder node and by the offline tools alike.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_STORE = Stores.ROS2_KILTED

_BUILTINS = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring", "time", "duration",
}


class UnknownMessageType(LookupError):
    """No definition could be found for a message type."""


def _split(msgtype: str) -> tuple[str, str]:
    parts = msgtype.split("/")
    if len(parts) == 3 and parts[1] == "msg":
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise UnknownMessageType(f"message type {msgtype!r} is not of the form pkg/msg/Name")


def normalize_type(msgtype: str) -> str:
    """``sensor_msgs/Image`` or ``sensor_msgs/msg/Image`` → ``sensor_msgs/msg/Image``."""
    pkg, name = _split(msgtype.strip())
    return f"{pkg}/msg/{name}"


def definition_search_dirs() -> list[Path]:
    """Prefixes whose ``share/<pkg>/msg/<Name>.msg`` may hold a definition."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    return [Path(p) / "share" for p in prefixes]


def find_msg_file(msgtype: str) -> Path | None:
    pkg, name = _split(msgtype)
    if pkg == "octo_ros_msgs":
        repo_file = REPO_ROOT / "octo_ros_msgs" / "msg" / f"{name}.msg"
        if repo_file.is_file():
            return repo_file
    for share in definition_search_dirs():
        candidate = share / pkg / "msg" / f"{name}.msg"
        if candidate.is_file():
            return candidate
    return None


def _dependencies(text: str, pkg: str) -> list[str]:
    """Complex types a .msg definition uses (fields only; constants are builtin)."""
    deps = []
    for line in text.splitlines():
        tokens = line.split("#", 1)[0].split()
        if len(tokens) < 2:
            continue
        base = re.split(r"[\[<]", tokens[0], maxsplit=1)[0]
        if base in _BUILTINS:
            continue
        if base == "Header":
            deps.append("std_msgs/msg/Header")
        elif "/" in base:
            deps.append(normalize_type(base))
        else:
            deps.append(f"{pkg}/msg/{base}")
    return deps


class RecordingTypes:
    """A typestore that can describe any type the recorder is asked to record."""

    def __init__(self, store: Stores = BASE_STORE):
        self.store: Typestore = get_typestore(store)
        self._lock = threading.Lock()
        # octo_ros_msgs from this repository: always the definitions of this checkout.
        for msg_file in sorted((REPO_ROOT / "octo_ros_msgs" / "msg").glob("*.msg")):
            self.ensure(f"octo_ros_msgs/msg/{msg_file.stem}")

    def ensure(self, msgtype: str) -> str:
        """Make ``msgtype`` (and what it uses) known; returns the normalized name."""
        msgtype = normalize_type(msgtype)
        with self._lock:
            self._ensure(msgtype, set())
        return msgtype

    def _ensure(self, msgtype: str, visiting: set[str]) -> None:
        if msgtype in self.store.fielddefs or msgtype in visiting:
            return
        visiting.add(msgtype)
        path = find_msg_file(msgtype)
        if path is None:
            raise UnknownMessageType(
                f"no definition for {msgtype}: not in rosbags' {BASE_STORE.name} typestore and no "
                f"share/<pkg>/msg/<Name>.msg under {', '.join(map(str, definition_search_dirs()))}"
            )
        text = path.read_text()
        pkg, _ = _split(msgtype)
        for dep in _dependencies(text, pkg):
            self._ensure(dep, visiting)
        self.store.register(get_types_from_msg(text, msgtype))

    def describe(self, msgtype: str) -> tuple[str, str]:
        """(ros2msg definition text with dependencies, RIHS01 hash) for a bag connection."""
        msgtype = self.ensure(msgtype)
        msgdef, _ = self.store.generate_msgdef(msgtype, ros_version=2)
        return msgdef, self.store.hash_rihs01(msgtype)

    def serialize(self, msg, msgtype: str) -> bytes:
        return bytes(self.store.serialize_cdr(msg, normalize_type(msgtype)))

    def deserialize(self, data: bytes, msgtype: str):
        return self.store.deserialize_cdr(data, normalize_type(msgtype))

    def message_class(self, msgtype: str):
        return self.store.types[self.ensure(msgtype)]


_shared: RecordingTypes | None = None


def recording_types() -> RecordingTypes:
    """The process-wide typestore (building one parses every octo_ros_msgs definition)."""
    global _shared
    if _shared is None:
        _shared = RecordingTypes()
    return _shared
