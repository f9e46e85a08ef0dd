"""One rollout episode → one rosbag2 bag (MCAP storage), crash safe.

Layout of a bag written here (``<output_dir>/<robot>_<YYYYmmdd-HHMMSS>/``)::

    <name>.mcap       MCAP as rosbag2's MCAP plugin writes it (see rosbag2_mcap.py): profile ros2,
                      cdr messages, ros2msg schemas (definitions embedded), per-channel QoS and
                      type hash, chunk and summary CRCs, the bag metadata with the ROS distro
    metadata.yaml     rosbag2 metadata, version 8 (offered_qos_profiles as a YAML string, the
                      form Humble's parser reads; Jazzy/Kilted read it too), written on stop

Episode metadata (the evidence a rollout needs) is stored twice, on purpose:

* topic ``/episode/metadata`` (``std_msgs/msg/String``, a JSON object): one message when the
  episode starts (``"phase": "start"``) and one when it stops (``"phase": "stop"``, adds the
  outcome, notes and per-topic counts). The start message is flushed to disk at once, so the
  evidence survives a crash; a standard type, so ``ros2 bag play`` needs nothing extra;
* ``metadata.yaml`` ``custom_data`` (also inside the MCAP ``rosbag2`` metadata record): key
  ``octo_ros.episode`` holds the final JSON; ``octo_ros.<field>`` hold the main fields as
  flat strings for ``ros2 bag info``-style tools.

Crash safety: the MCAP writer keeps the current chunk in memory until it exceeds 1 MiB.
:class:`EpisodeBagWriter` closes the chunk and flushes the file to the OS whenever the oldest
unflushed message is ``flush_period`` old (default 0.5 s; the node also calls
:meth:`EpisodeBagWriter.flush_if_due` from a timer), so a SIGKILL loses at most that much. A
killed writer leaves an MCAP without summary/footer and no metadata.yaml; rosbags' reader needs
both, so :func:`repair_bag` (``octo-ros repair BAG``) rebuilds the bag from every complete record
(read with the ``mcap`` stream reader) and marks the outcome ``incomplete``.
"""
from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import Qos

from octo_ros.recording.rosbag2_mcap import Rosbag2McapWriter
from octo_ros.recording.types import RecordingTypes, UnknownMessageType, normalize_type, recording_types

METADATA_TOPIC = "/episode/metadata"
METADATA_TYPE = "std_msgs/msg/String"
CUSTOM_DATA_KEY = "octo_ros.episode"
FLAT_KEYS = (
    "robot", "instruction", "outcome", "operator", "checkpoint_id", "checkpoint_hash",
    "dataset_statistics_key", "gripper_convention", "seed", "software_version",
)
INCOMPLETE_OUTCOME = "incomplete"
# The labels an operator gives an episode (StopEpisode.outcome → EpisodeInfo.outcome): the export
# keeps success and failure episodes and skips discarded ones. Other outcomes an episode can end
# with: "unlabeled" (stopped without one), INCOMPLETE_OUTCOME (repaired after a crash), free text.
SUCCESS, FAILURE, DISCARD = "success", "failure", "discard"
EPISODE_LABELS = (SUCCESS, FAILURE, DISCARD)


class RecordingError(RuntimeError):
    """A problem writing an episode bag, phrased for the operator."""


# --------------------------------------------------------------------------- naming / evidence


def episode_name(robot: str, when: _dt.datetime | None = None) -> str:
    """``<robot>_<YYYYmmdd-HHMMSS>`` in local time; robot sanitized to [A-Za-z0-9_-]."""
    when = when or _dt.datetime.now()
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in (robot or "robot")) or "robot"
    return f"{safe}_{when.strftime('%Y%m%d-%H%M%S')}"


def software_version() -> str:
    """octo_ros package version plus the git commit of this checkout when there is one."""
    try:
        from importlib.metadata import version

        pkg = version("octo_ros")
    except Exception:  # not installed as a distribution
        pkg = "unknown"
    commit = _git_commit(Path(__file__).resolve().parents[2])
    return f"octo_ros {pkg}" + (f" (git {commit})" if commit else "")


def _git_commit(root: Path) -> str | None:
    """Read HEAD without running git (read-only, works without the git binary)."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git / ref
            if ref_file.is_file():
                return ref_file.read_text().strip()[:12]
            packed = git / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0][:12]
            return None
        return head[:12]
    except OSError:
        return None


@dataclass
class EpisodeInfo:
    """Everything a recorded rollout carries besides its messages."""

    robot: str
    instruction: str = ""
    operator: str = ""
    checkpoint_id: str = ""
    checkpoint_hash: str = ""
    dataset_statistics_key: str = ""
    adapter_config: str = ""
    gripper_convention: str = ""
    seed: int | None = None
    goal_image_topic: str = ""
    # the observation buffer's ProprioLayout.to_dict(): how the model's proprio is built from the
    # recorded joint states (the export's observation.state)
    proprio_layout: dict[str, Any] = field(default_factory=dict)
    software_version: str = field(default_factory=software_version)
    metadata: dict[str, str] = field(default_factory=dict)  # free-form, from StartEpisode
    # filled in on stop
    outcome: str = ""  # the label (EPISODE_LABELS) or another outcome
    notes: dict[str, str] = field(default_factory=dict)  # free-form, from StopEpisode

    def to_json_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# --------------------------------------------------------------------------- QoS


def qos_for(kind: str) -> list[Qos]:
    """Offered QoS stored with a connection: what ``ros2 bag play`` re-publishes with."""
    from rosbags.interfaces import QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    forever = QosTime(0x7FFFFFFF, 0xFFFFFFFF)
    reliability = QosReliability.BEST_EFFORT if kind == "sensor" else QosReliability.RELIABLE
    durability = QosDurability.TRANSIENT_LOCAL if kind == "latched" else QosDurability.VOLATILE
    return [Qos(QosHistory.UNKNOWN, 0, reliability, durability, zero, zero, QosLiveliness.AUTOMATIC, forever, False)]


# --------------------------------------------------------------------------- writer


@dataclass
class TopicSpec:
    topic: str
    msgtype: str
    qos: str = "reliable"  # "sensor" | "reliable" | "latched"


class EpisodeBagWriter:
    """Writes one episode; not thread safe on its own (the node serializes calls with a lock).

    ``write(topic, timestamp_ns, cdr_bytes)`` takes serialized CDR exactly as received.
    """

    def __init__(
        self,
        output_dir: str | Path,
        info: EpisodeInfo,
        topics: list[TopicSpec],
        *,
        flush_period: float = 0.5,
        fsync: bool = False,
        types: RecordingTypes | None = None,
        name: str | None = None,
        clock=time.time_ns,
    ):
        self.info = info
        self.flush_period = float(flush_period)
        self.fsync = fsync
        self.types = types or recording_types()
        self._clock = clock
        output_dir = Path(output_dir).expanduser()
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"cannot create output directory {output_dir}: {exc.strerror or exc}") from exc
        if not os.access(output_dir, os.W_OK):
            raise RecordingError(f"output directory {output_dir} is not writable")
        base = name or episode_name(info.robot)
        path = output_dir / base
        suffix = 2
        while path.exists():
            path = output_dir / f"{base}_{suffix}"
            suffix += 1
        self.path = path
        self.start_ns = clock()
        self.counts: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self._msgtypes: dict[str, str] = {}  # topic -> type
        self._unflushed_since: float | None = None
        self._closed = False
        self._failure: str | None = None
        try:
            self._writer = Rosbag2McapWriter(path, library=info.software_version)
        except OSError as exc:
            raise RecordingError(f"cannot create bag {path}: {exc.strerror or exc}") from exc
        self._file = self._writer.file
        self.mcap_path = self._writer.mcap_path
        try:
            self._add(TopicSpec(METADATA_TOPIC, METADATA_TYPE, "latched"))
            for spec in topics:
                self._add(spec)
            self._write_metadata_message("start")
            self.flush()
        except BaseException:
            self._writer.abort()
            raise

    # ----------------------------------------------------------------- connections

    def _add(self, spec: TopicSpec) -> None:
        msgtype = normalize_type(spec.msgtype)
        try:
            msgdef, rihs01 = self.types.describe(msgtype)
        except UnknownMessageType as exc:
            raise RecordingError(str(exc)) from exc
        if spec.topic in self._msgtypes:
            return
        self._writer.add_connection(spec.topic, msgtype, msgdef, rihs01, qos_for(spec.qos))
        self._msgtypes[spec.topic] = msgtype
        self.counts[spec.topic] = 0

    def add_topic(self, spec: TopicSpec) -> None:
        """Record one more topic from now on (e.g. its type was discovered mid-episode)."""
        if self._closed:
            raise RecordingError(f"episode {self.path.name} is already stopped")
        self._add(spec)

    @property
    def failure(self) -> str | None:
        """Why writing failed mid-episode (disk full, directory gone), if it did."""
        return self._failure

    @property
    def topics(self) -> list[str]:
        return list(self._msgtypes)

    # ----------------------------------------------------------------- writing

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        if self._closed:
            raise RecordingError(f"episode {self.path.name} is already stopped")
        if topic not in self._msgtypes:
            raise RecordingError(f"topic {topic} is not recorded in this episode")
        self._writer.write(topic, int(timestamp_ns), bytes(data))
        self.counts[topic] += 1
        if self._unflushed_since is None:
            self._unflushed_since = time.monotonic()
        self.flush_if_due()

    def write_message(self, topic: str, timestamp_ns: int, msg) -> None:
        """Serialize a rosbags message object for ``topic`` and write it."""
        self.write(topic, timestamp_ns, self.types.serialize(msg, self._msgtypes[topic]))

    def _write_metadata_message(self, phase: str) -> None:
        payload = {"phase": phase, "bag": self.path.name, "start_time_ns": self.start_ns, **self.info.to_json_dict()}
        if phase == "stop":
            payload["message_counts"] = dict(self.counts)
        String = self.types.message_class(METADATA_TYPE)
        self.write_message(METADATA_TOPIC, self._clock(), String(data=json.dumps(payload, sort_keys=True)))

    def flush_if_due(self) -> bool:
        if self._unflushed_since is not None and time.monotonic() - self._unflushed_since >= self.flush_period:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        """Close the pending MCAP chunk and hand it to the OS (fsync if configured)."""
        if self._closed:
            return
        self._check_still_there()
        try:
            self._writer.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            self._failure = _describe_os_error(exc, self.path)
            raise RecordingError(self._failure) from exc
        self._unflushed_since = None

    def _check_still_there(self) -> None:
        """Writes to a file whose directory was removed succeed and vanish: detect that."""
        try:
            gone = os.fstat(self._file.fileno()).st_nlink == 0 or not self.mcap_path.exists()
        except OSError:
            gone = True
        if gone:
            self._failure = f"bag {self.path} was removed while recording (directory gone)"
            raise RecordingError(self._failure)

    # ----------------------------------------------------------------- stop

    def close(self, outcome: str, notes: dict[str, str] | None = None) -> Path:
        """Write the stop metadata, the MCAP summary and metadata.yaml.

        Raises RecordingError (with what was kept) when the disk is full or the bag directory
        is gone; the data flushed so far stays on disk and :func:`repair_bag` recovers it.
        """
        if self._closed:
            return self.path
        self.info.outcome = outcome
        self.info.notes = dict(notes or {})
        try:
            self._write_metadata_message("stop")
            self.flush()
            self._writer.custom_data = custom_data_for(self.info, self.path.name, self.start_ns, self.counts)
            self._writer.close()
        except (OSError, RecordingError) as exc:
            self._closed = True
            reason = str(exc) if isinstance(exc, RecordingError) else _describe_os_error(exc, self.path)
            salvaged = self._salvage(reason)
            raise RecordingError(reason + salvaged) from exc
        self._closed = True
        return self.path

    def _salvage(self, reason: str) -> str:
        """After a failed stop: keep what can be kept and say where it is."""
        fd_path = None
        try:
            if not self._file.closed:
                fd_path = f"/proc/self/fd/{self._file.fileno()}"
        except (OSError, ValueError):
            fd_path = None
        if "directory gone" in reason and fd_path:
            # The open file still holds everything flushed: put it back where it belongs.
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                with open(fd_path, "rb") as src, open(self.mcap_path, "xb") as dst:
                    shutil.copyfileobj(src, dst)
                result = f"; the data written so far was restored to {self.mcap_path} (run `octo-ros repair {self.path}`)"
            except OSError as exc:
                result = f"; the data could not be restored ({exc.strerror or exc}): it is lost"
        elif self.mcap_path.exists():
            result = (
                f"; {self.mcap_path.stat().st_size} bytes are on disk in {self.mcap_path} "
                f"(run `octo-ros repair {self.path}` once there is space)"
            )
        else:
            result = "; nothing of the episode is on disk"
        try:
            self._writer.abort()
        except OSError:
            pass
        return result

    def abort(self) -> None:
        """Stop without a summary (the bag stays repairable)."""
        if not self._closed:
            self._closed = True
            try:
                self.flush_file_quietly()
            finally:
                self._writer.abort()

    def flush_file_quietly(self) -> None:
        try:
            self._writer.flush()
        except (OSError, ValueError):
            pass


def custom_data_for(info: EpisodeInfo, bag_name: str, start_ns: int, counts: dict[str, int]) -> dict[str, str]:
    doc = {"bag": bag_name, "start_time_ns": start_ns, "message_counts": dict(counts), **info.to_json_dict()}
    custom = {CUSTOM_DATA_KEY: json.dumps(doc, sort_keys=True)}
    for key in FLAT_KEYS:
        value = doc.get(key)
        custom[f"octo_ros.{key}"] = "" if value is None else str(value)
    return custom


def _describe_os_error(exc: BaseException, path: Path) -> str:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full while writing {path}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOENT:
        return f"bag {path} was removed while recording (directory gone): {exc.strerror}"
    if isinstance(exc, OSError):
        return f"cannot write {path}: {exc.strerror or exc}"
    return f"cannot write {path}: {exc}"


# --------------------------------------------------------------------------- completeness / repair


def mcap_file_of(bag: str | Path) -> Path:
    bag = Path(bag)
    if bag.is_file():
        return bag
    files = sorted(bag.glob("*.mcap"))
    if not files:
        raise RecordingError(f"{bag}: no .mcap file")
    preferred = bag / f"{bag.name}.mcap"
    return preferred if preferred in files else files[0]


_MAGIC = b"\x89MCAP0\r\n"


def is_complete(bag: str | Path) -> bool:
    """True when the bag has metadata.yaml and its MCAP ends with a footer."""
    bag = Path(bag)
    if bag.is_dir() and not (bag / "metadata.yaml").is_file():
        return False
    try:
        mcap = mcap_file_of(bag)
        with open(mcap, "rb") as f:
            f.seek(0, 2)
            if f.tell() < 2 * len(_MAGIC) + 37:
                return False
            f.seek(-len(_MAGIC), 2)
            return f.read() == _MAGIC
    except (OSError, RecordingError):
        return False


@dataclass
class RepairReport:
    bag: Path
    messages: int
    topics: dict[str, int]
    dropped_bytes: int
    last_time_ns: int | None

    def __str__(self) -> str:
        per = ", ".join(f"{t}: {n}" for t, n in self.topics.items())
        return f"repaired {self.bag}: {self.messages} messages kept ({per}); {self.dropped_bytes} trailing bytes dropped"


def repair_bag(bag: str | Path, *, keep_original: bool = False) -> RepairReport:
    """Rebuild a bag whose writer died: every complete record is kept, the torn tail dropped.

    Reads the MCAP with the ``mcap`` library's stream reader (which needs no summary), writes a
    new bag (same topics, types, definitions, QoS, type hashes, timestamps and CDR bytes), sets
    the outcome to ``incomplete`` unless a stop record made it, and swaps it in place.
    """
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    bag = Path(bag)
    if not bag.is_dir():
        raise RecordingError(f"{bag} is not a bag directory")
    src = mcap_file_of(bag)
    size = src.stat().st_size
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    messages: list[Message] = []
    consumed = 0
    with open(src, "rb") as f:
        reader = StreamReader(f, record_size_limit=None)
        try:
            for record in reader.records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    messages.append(record)
                consumed = f.tell()
        except Exception:  # noqa: BLE001 - a torn tail ends the scan at the last good record
            pass
    if not channels:
        raise RecordingError(f"{src}: no readable channel records; nothing to recover")

    types = recording_types()
    tmp_parent = bag.parent / f".{bag.name}.repair"
    if tmp_parent.exists():
        shutil.rmtree(tmp_parent)
    tmp_parent.mkdir()
    out = tmp_parent / bag.name
    writer = Rosbag2McapWriter(out, library=software_version())
    topics = {}
    for cid, ch in sorted(channels.items()):
        schema = schemas.get(ch.schema_id)
        if schema is None:
            continue
        rihs01 = (ch.metadata or {}).get("topic_type_hash", "")
        if not rihs01:
            try:
                _, rihs01 = types.describe(schema.name)
            except UnknownMessageType:
                rihs01 = "RIHS01_" + "0" * 64  # the definition travels in the bag; hash unknown here
        writer.add_connection(ch.topic, schema.name, schema.data.decode(), rihs01,
                              (ch.metadata or {}).get("offered_qos_profiles", ""),
                              schema_encoding=schema.encoding, message_encoding=ch.message_encoding)
        topics[cid] = ch.topic
    counts: dict[str, int] = {}
    last_meta = None
    for m in messages:
        topic = topics.get(m.channel_id)
        if topic is None:
            continue
        writer.write(topic, m.log_time, m.data)
        counts[topic] = counts.get(topic, 0) + 1
        if topic == METADATA_TOPIC:
            last_meta = m.data
    doc: dict[str, Any] = {}
    if last_meta is not None:
        doc = json.loads(types.deserialize(last_meta, METADATA_TYPE).data)
    if doc.get("phase") != "stop":
        doc["outcome"] = INCOMPLETE_OUTCOME
    doc["repaired"] = True
    doc["message_counts"] = counts
    custom = {CUSTOM_DATA_KEY: json.dumps(doc, sort_keys=True)}
    for key in FLAT_KEYS:
        value = doc.get(key)
        custom[f"octo_ros.{key}"] = "" if value is None else str(value)
    writer.custom_data = custom
    writer.close()

    if keep_original:
        src.rename(src.with_name(src.name + ".orig"))
    else:
        src.unlink()
    for item in out.iterdir():
        item.replace(bag / item.name)
    shutil.rmtree(tmp_parent)
    return RepairReport(
        bag=bag, messages=sum(counts.values()), topics=counts, dropped_bytes=size - consumed,
        last_time_ns=max((m.log_time for m in messages), default=None),
    )


def unfinished_bags(output_dir: str | Path) -> list[Path]:
    """Bags in ``output_dir`` without metadata.yaml (a writer died): candidates for repair."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.mcap"))
                  and not (p / "metadata.yaml").exists())


def read_episode_metadata(bag: str | Path) -> dict[str, Any]:
    """The episode JSON from metadata.yaml custom_data (complete bags)."""
    from ruamel.yaml import YAML

    meta = YAML(typ="safe").load((Path(bag) / "metadata.yaml").read_text())
    custom = meta["rosbag2_bagfile_information"].get("custom_data") or {}
    return json.loads(custom[CUSTOM_DATA_KEY])
