"""Observation buffer core: camera frames + joint states -> Octo observation windows.

Pure Python (numpy + :mod:`octo_ros.perception.image_codec`); no ROS imports.  The ROS node
is a thin shell: it forwards every message to :meth:`ObservationBuffer.add_image_msg` /
:meth:`ObservationBuffer.add_joint_state_msg` (with the source topic; or the array-level
``add_image`` / ``add_joint_state``), catches :class:`PerceptionInputError` (log throttled, ``str(err)``
names the stream and topic), and calls :meth:`ObservationBuffer.assemble` from a timer at
``rate_hz``; the result is an :class:`ObservationWindow` or an :class:`ObservationStatus`
explaining why there is nothing to publish.

Semantics (all times are integer nanoseconds, ROS stamps):

* Images are kept at full resolution in a per-input queue and converted to the model
  resolution (:func:`~octo_ros.perception.image_codec.resize_like_octo`) only when a frame
  becomes a window step.
* A step uses one frame per camera input; the set must agree within ``slop_ns``
  (max stamp - min stamp).  The newest such set whose reference stamp (the first configured
  input, normally ``image_primary``) is newer than the previous step by at least
  ``min_step_interval_ns`` is taken.  The step stamp is the reference frame's stamp.
* Joint states come from one or more ``sensor_msgs/JointState`` topics (``joint_state_sources``,
  each ``{topic, prefix}``); a source's joint names become ``prefix + name`` (e.g. two ALOHA
  followers publishing the same names, prefixed ``left_`` / ``right_``). ``joint_names`` uses
  the prefixed names.
* Proprio: per source, the newest joint state with stamp <= step stamp, no older than
  ``max_joint_lag_ns`` before it; the sources' joints are reordered to ``joint_names`` and,
  for the joints in ``proprio_normalization`` ({joint: (close, open)}), mapped affinely to
  ``(x - close) / (open - close)`` (close -> 0, open -> 1: ALOHA's normalized gripper position).
* Freshness: each camera's newest frame and each joint-state source's newest state must be at
  most ``max_image_age_ns`` / ``max_joint_state_age_ns`` old at ``now_ns``; otherwise the status
  is STALE naming the stream (``joint_state (<topic>)`` for a source), nothing is produced, and
  the window restarts (the next window is padded again), as it does when consecutive steps are
  more than ``max_step_gap_ns`` apart.
* Window (Octo ``HistoryWrapper`` convention): ``window_size`` slots, oldest first; before
  ``window_size`` real steps exist, the leading slots are padding holding copies of the first
  real step (images, proprio, stamps) with ``timestep_pad_mask`` False, e.g. ``[False, True]``.
* Per stream, a stamp <= the last accepted one is rejected (:class:`StampOrderError`).
  :meth:`ObservationBuffer.reset` forgets everything (call it on episode start or when the
  ROS clock jumps back, e.g. a looping bag).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from octo_ros.datatypes import ObservationWindow
from octo_ros.perception.image_codec import (
    PerceptionInputError,
    decode_image_msg,
    ensure_rgb_uint8,
    resize_like_octo,
)
from octo_ros.timebase import NS_PER_S, seconds_to_ns, stamp_to_ns

__all__ = [
    "CameraInputConfig",
    "JointStateSourceConfig",
    "ProprioLayout",
    "ObservationConfig",
    "ObservationBuffer",
    "ObservationWindow",
    "ObservationStatus",
    "StatusKind",
    "PerceptionInputError",
    "ObservationInputError",
    "UnknownInputError",
    "StampOrderError",
    "StampInFutureError",
    "JointStateError",
    "DEFAULT_RESOLUTIONS",
]

#: Model resolutions (height, width) of the standard Octo inputs.
DEFAULT_RESOLUTIONS = {"image_primary": (256, 256), "image_wrist": (128, 128)}


# --------------------------------------------------------------------------- errors


class ObservationInputError(PerceptionInputError):
    """A message was rejected by the buffer (the frame is dropped, the buffer continues)."""


class UnknownInputError(ObservationInputError):
    """An image for an input name that is not configured."""


class StampOrderError(ObservationInputError):
    """Stamp not newer than the last accepted one on the same stream (``duplicate`` tells
    whether it was equal, i.e. a duplicate, or older, i.e. out of order)."""

    def __init__(self, message: str, stream: Optional[str] = None, duplicate: bool = False):
        super().__init__(message, stream)
        self.duplicate = duplicate


class StampInFutureError(ObservationInputError):
    """Stamp further ahead of the receiving clock than ``max_future_stamp_ns``."""


class JointStateError(ObservationInputError):
    """Joint state without a configured joint, with mismatched lengths, duplicated names or
    values that are not finite (as the float32 the model gets)."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class CameraInputConfig:
    """One camera feeding one model input.

    ``average_crop``: apply ResizeImageWrapper's average random-resized-crop (the official
    default for ``image_primary`` only, i.e. the keys the model was trained with crop
    augmentation on)."""

    input_name: str
    topic: str = ""
    height: int = 256
    width: int = 256
    average_crop: bool = False

    @property
    def label(self) -> str:
        return f"{self.input_name} ({self.topic})" if self.topic else self.input_name

    @classmethod
    def standard(cls, input_name: str, topic: str = "") -> "CameraInputConfig":
        """The defaults of a model input: :data:`DEFAULT_RESOLUTIONS` (else 256x256), the average
        crop for ``image_primary`` only."""
        height, width = DEFAULT_RESOLUTIONS.get(input_name, (256, 256))
        return cls(input_name, topic, height, width, input_name == "image_primary")


@dataclass(frozen=True)
class JointStateSourceConfig:
    """One ``sensor_msgs/JointState`` topic; its joint names become ``prefix + name``."""

    topic: str = "joint_states"  # relative: in the buffer's namespace, as the driver publishes it
    prefix: str = ""

    @property
    def label(self) -> str:
        return f"joint_state ({self.topic})"


@dataclass(frozen=True)
class ProprioLayout:
    """How joint states become the proprio vector (the buffer's rules; the export of recorded
    episodes uses them too): ``joint_names`` (prefixed) from ``sources`` (a source's joint names
    become ``prefix + name``), the joints in ``normalization`` ({joint: (close, open)}) mapped
    to ``(x - close) / (open - close)``. Every joint must start with the prefix of at least one
    source and every source's prefix must match at least one joint (when there are joints).

    The map form (:meth:`from_dict` / :meth:`to_dict`) is the ``joint_state`` and
    ``proprio_normalization`` part of :meth:`ObservationConfig.from_dict`.
    """

    joint_names: Tuple[str, ...] = ()
    sources: Tuple[JointStateSourceConfig, ...] = (JointStateSourceConfig(),)
    normalization: Mapping[str, Tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "joint_names", tuple(str(j) for j in self.joint_names))
        sources = tuple(s if isinstance(s, JointStateSourceConfig) else JointStateSourceConfig(**dict(s))
                        for s in self.sources)
        object.__setattr__(self, "sources", sources)
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"duplicate joint names {list(self.joint_names)}")
        topics = [s.topic for s in sources]
        if not sources:
            raise ValueError("no joint_state source")
        if any(not t for t in topics):
            raise ValueError(f"empty joint_state topic in {topics}")
        if len(set(topics)) != len(topics):
            raise ValueError(f"duplicate joint_state topics {topics}")
        if self.joint_names:
            prefixes = [s.prefix for s in sources]
            orphans = [j for j in self.joint_names if not any(j.startswith(p) and len(j) > len(p) for p in prefixes)]
            if orphans:
                raise ValueError(f"proprio joints {orphans} match no joint_state source prefix "
                                 f"{dict(zip(topics, prefixes))}")
            for s in sources:
                if not any(j.startswith(s.prefix) and len(j) > len(s.prefix) for j in self.joint_names):
                    raise ValueError(f"joint_state source {s.topic} (prefix {s.prefix!r}) provides "
                                     f"none of the proprio joints {list(self.joint_names)}")
        norm: Dict[str, Tuple[float, float]] = {}
        for joint, pair in dict(self.normalization or {}).items():
            joint = str(joint)
            if joint not in self.joint_names:
                raise ValueError(f"proprio_normalization names {joint!r}, which is not a proprio "
                                 f"joint {list(self.joint_names)}")
            try:
                close, open_ = (float(v) for v in pair)
            except (TypeError, ValueError):
                raise ValueError(f"proprio_normalization.{joint} must be [close, open] "
                                 f"(the values that map to 0 and 1), got {pair!r}") from None
            if not (math.isfinite(close) and math.isfinite(open_)) or close == open_:
                raise ValueError(f"proprio_normalization.{joint} = [{close}, {open_}]: "
                                 "close and open must be finite and differ")
            norm[joint] = (close, open_)
        object.__setattr__(self, "normalization", norm)
        # Per source: the proprio joints only it can provide (by prefix); a message of that source
        # must carry them all. (Joints several prefixes match may come from any of those sources.)
        index = {n: i for i, n in enumerate(self.joint_names)}
        matches = {s.topic: {j for j in self.joint_names if j.startswith(s.prefix) and len(j) > len(s.prefix)}
                   for s in sources}
        required = {}
        for topic, mine in matches.items():
            others = set().union(*(m for t, m in matches.items() if t != topic))
            required[topic] = np.array([j in mine and j not in others for j in self.joint_names], bool)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_required", required)
        object.__setattr__(self, "_norm_index", np.array([index[j] for j in norm], np.intp))
        object.__setattr__(self, "_norm_close", np.array([c for c, _ in norm.values()], np.float64))
        object.__setattr__(self, "_norm_span", np.array([o - c for c, o in norm.values()], np.float64))

    def source(self, topic: str) -> Optional[JointStateSourceConfig]:
        return next((s for s in self.sources if s.topic == topic), None)

    def parse(self, topic: str, names: Sequence[str], positions: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        """One joint state of source ``topic`` → (values in ``joint_names`` order (float64),
        which of them it carried). Raises JointStateError (missing joints of this source, none of
        the joints, length mismatch, non-finite position)."""
        src = self.source(topic)
        if src is None:
            raise UnknownInputError(f"unknown joint_state topic {topic!r} (configured: {[s.topic for s in self.sources]})")
        names = list(names)
        pos = np.asarray(positions, dtype=np.float64).reshape(-1)
        if len(names) != pos.size:
            raise JointStateError(f"{len(names)} names but {pos.size} positions")
        if len(set(names)) != len(names):
            seen: set = set()
            dup = sorted({str(n) for n in names if n in seen or seen.add(n)})
            raise JointStateError(f"duplicated joint names {dup} (message has {names})")
        n_joints = len(self.joint_names)
        vec = np.zeros(n_joints, np.float64)
        found = np.zeros(n_joints, bool)
        for n, p in zip(names, pos):
            i = self._index.get(src.prefix + str(n))
            if i is not None:
                vec[i] = p
                found[i] = True
        missing = self._required[src.topic] & ~found
        if missing.any():
            missing_names = [n for n, m in zip(self.joint_names, missing) if m]
            prefix = f"prefix {src.prefix!r}; " if src.prefix else ""
            raise JointStateError(f"missing joints {missing_names} ({prefix}message has {names})")
        if n_joints and not found.any():
            raise JointStateError(f"none of the proprio joints {list(self.joint_names)} "
                                  f"(prefix {src.prefix!r}; message has {names})")
        if not np.all(np.isfinite(vec[found])):
            bad = [n for n, v, f in zip(self.joint_names, vec, found) if f and not np.isfinite(v)]
            raise JointStateError(f"non-finite positions for joints {bad}")
        with np.errstate(over="ignore"):
            model = self._normalized(np.where(found, vec, 0.0)).astype(np.float32)  # what the model gets
        if not np.all(np.isfinite(model[found])):
            bad = {n: float(v) for n, v, m, f in zip(self.joint_names, vec, model, found) if f and not np.isfinite(m)}
            raise JointStateError(f"positions {bad} are not finite as float32 (normalized), the model's proprio")
        return vec, found

    def _normalized(self, values: np.ndarray) -> np.ndarray:
        out = np.array(values, np.float64)
        if self._norm_index.size:
            out[self._norm_index] = (out[self._norm_index] - self._norm_close) / self._norm_span
        return out

    def merge(self, states: Sequence[Tuple[np.ndarray, np.ndarray]]) -> Tuple[np.ndarray, List[str]]:
        """Parsed states, one per source in ``sources`` order → (proprio float32, normalized; the
        joints none of them carried). A joint comes from the first source carrying it."""
        values = np.zeros(len(self.joint_names), np.float64)
        filled = np.zeros(len(self.joint_names), bool)
        for vec, found in states:
            take = found & ~filled
            values[take] = vec[take]
            filled |= take
        missing = [n for n, f in zip(self.joint_names, filled) if not f]
        return self._normalized(values).astype(np.float32), missing

    def to_dict(self) -> Dict[str, Any]:
        return {"joint_state": {"sources": [{"topic": s.topic, "prefix": s.prefix} for s in self.sources],
                                "joints": list(self.joint_names)},
                "proprio_normalization": {j: list(v) for j, v in self.normalization.items()}}

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> "ProprioLayout":
        """From the observation buffer node's parameters as a parameter file holds them:
        ``joint_state_topic`` (default ``joint_states``) or ``joint_state_topics`` with
        ``joint_state_prefixes``, ``proprio_joints``, ``proprio_normalization`` ({joint: [close,
        open]}, nested or as ``proprio_normalization.<joint>`` keys)."""
        topics = [str(t) for t in params.get("joint_state_topics") or () if t]
        prefixes = [str(p) for p in params.get("joint_state_prefixes") or ()]
        single = str(params.get("joint_state_topic") or "")
        if not topics:
            if len(prefixes) > 1:
                raise ValueError(f"joint_state_prefixes {prefixes}: one prefix for joint_state_topic {single}")
            sources = [JointStateSourceConfig(single or "joint_states", prefixes[0] if prefixes else "")]
        else:
            if single:
                raise ValueError(f"set joint_state_topic ({single}) or joint_state_topics ({topics}), not both")
            prefixes = prefixes if prefixes not in ([""], []) else [""] * len(topics)
            if len(prefixes) != len(topics):
                raise ValueError(f"joint_state_prefixes {prefixes} must match joint_state_topics {topics} one to one")
            sources = [JointStateSourceConfig(t, p) for t, p in zip(topics, prefixes)]
        norm = dict(params.get("proprio_normalization") or {})
        norm.update({k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("proprio_normalization.")})
        joints = tuple(str(j) for j in params.get("proprio_joints") or () if j)
        return cls(joints, tuple(sources), norm)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProprioLayout":
        """From ``{joint_state: {topic, prefix} | {sources: [...]}, joints: [...]}, proprio_normalization: {...}}``."""
        d = dict(d)
        js = dict(d.pop("joint_state", None) or {})
        sources_raw = js.pop("sources", None)
        if sources_raw is not None:
            if "topic" in js or "prefix" in js:
                raise ValueError("joint_state takes 'topic' (one source) or 'sources', not both")
            sources = []
            for spec in sources_raw:
                spec = dict(spec or {})
                topic, prefix = str(spec.pop("topic", "")), str(spec.pop("prefix", ""))
                if spec:
                    raise ValueError(f"unknown keys for joint_state source {topic}: {sorted(spec)}")
                sources.append(JointStateSourceConfig(topic, prefix))
            if not sources:
                raise ValueError("joint_state.sources is empty")
        else:
            sources = [JointStateSourceConfig(str(js.pop("topic", JointStateSourceConfig.topic)), str(js.pop("prefix", "")))]
        joints = tuple(str(j) for j in js.pop("joints", ()))
        if js:
            raise ValueError(f"unknown keys in joint_state: {sorted(js)}")
        norm = dict(d.pop("proprio_normalization", None) or {})
        if d:
            raise ValueError(f"unknown keys {sorted(d)}")
        return cls(joints, tuple(sources), norm)


@dataclass(frozen=True)
class ObservationConfig:
    """Configuration of :class:`ObservationBuffer` (times in integer nanoseconds).

    Build it with :meth:`from_dict` / :meth:`from_yaml` from a map with times in seconds::

        rate_hz: 5.0
        window_size: 2
        slop_s: 0.02
        max_image_age_s: 0.5
        max_joint_state_age_s: 0.25
        max_joint_lag_s: 0.1
        cameras:
          image_primary: {topic: camera/image_raw}                 # 256x256, average crop
          image_wrist: {topic: wrist/image_raw/compressed}         # 128x128
        joint_state:
          topic: joint_states
          joints: [waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate, gripper]

    Several joint-state topics (names prefixed per source) and normalized joints::

        joint_state:
          sources:
            - {topic: follower_left/joint_states, prefix: left_}
            - {topic: follower_right/joint_states, prefix: right_}
          joints: [left_waist, ..., left_left_finger, right_waist, ..., right_left_finger]
        proprio_normalization:      # joint: [close, open] = [value at 0, value at 1]
          left_left_finger: [0.0440, 0.0579]
          right_left_finger: [0.0440, 0.0579]

    ``joint_state_topic`` is the single-source form; with ``joint_state_sources`` given it
    is set to the first source's topic. Every proprio joint must start with the prefix of at
    least one source, and every source's prefix must match at least one proprio joint.
    """

    cameras: Tuple[CameraInputConfig, ...]
    joint_names: Tuple[str, ...] = ()
    joint_state_topic: str = JointStateSourceConfig.topic
    window_size: int = 2
    rate_hz: float = 5.0
    slop_ns: int = 20_000_000
    max_image_age_ns: int = 500_000_000
    max_joint_state_age_ns: int = 250_000_000
    max_joint_lag_ns: int = 100_000_000
    min_step_interval_ns: Optional[int] = None  # default: half a period
    max_step_gap_ns: Optional[int] = None  # default: three periods
    image_queue_size: int = 10
    joint_queue_size: int = 500
    # Stamps further ahead of the buffer's clock are refused (clock skew between hosts; as the adapters).
    max_future_stamp_ns: int = 50_000_000
    # Frames with more pixels are refused from their header, before decoding (decompression bombs):
    # 4K UHD, more than any camera an Octo policy is run with.
    max_image_pixels: int = 3840 * 2160
    joint_state_sources: Tuple[JointStateSourceConfig, ...] = ()  # default: one, joint_state_topic
    proprio_normalization: Mapping[str, Tuple[float, float]] = field(default_factory=dict)  # joint: (close, open)

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError("ObservationConfig: at least one camera input is required")
        names = [c.input_name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"ObservationConfig: duplicate camera input names {names}")
        for c in self.cameras:
            if not c.input_name.startswith("image_"):
                raise ValueError(f"ObservationConfig: input name {c.input_name!r} must start with 'image_'")
            if c.height <= 0 or c.width <= 0:
                raise ValueError(f"ObservationConfig: {c.input_name} resolution must be positive")
        if self.window_size < 1:
            raise ValueError("ObservationConfig: window_size must be >= 1")
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise ValueError("ObservationConfig: rate_hz must be > 0")
        for name in ("slop_ns", "max_image_age_ns", "max_joint_state_age_ns", "max_joint_lag_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"ObservationConfig: {name} must be >= 0")
        if self.image_queue_size < 1 or self.joint_queue_size < 1:
            raise ValueError("ObservationConfig: queue sizes must be >= 1")
        if not 0 <= self.max_future_stamp_ns <= NS_PER_S:
            raise ValueError(f"ObservationConfig: max_future_stamp_s must be in [0, 1] s, got {self.max_future_stamp_ns / NS_PER_S}")
        if self.max_image_pixels < 1:
            raise ValueError(f"ObservationConfig: max_image_pixels must be >= 1, got {self.max_image_pixels}")
        sources = tuple(self.joint_state_sources) or (JointStateSourceConfig(str(self.joint_state_topic), ""),)
        try:
            layout = ProprioLayout(self.joint_names, sources, self.proprio_normalization)
        except ValueError as err:
            raise ValueError(f"ObservationConfig: {err}") from None
        object.__setattr__(self, "joint_state_sources", layout.sources)
        object.__setattr__(self, "joint_state_topic", layout.sources[0].topic)
        object.__setattr__(self, "proprio_normalization", layout.normalization)

    @property
    def proprio_layout(self) -> ProprioLayout:
        return ProprioLayout(self.joint_names, self.joint_state_sources, self.proprio_normalization)

    @property
    def period_ns(self) -> int:
        return int(round(NS_PER_S / self.rate_hz))

    @property
    def effective_min_step_interval_ns(self) -> int:
        return self.period_ns // 2 if self.min_step_interval_ns is None else int(self.min_step_interval_ns)

    @property
    def effective_max_step_gap_ns(self) -> int:
        return 3 * self.period_ns if self.max_step_gap_ns is None else int(self.max_step_gap_ns)

    @property
    def input_names(self) -> Tuple[str, ...]:
        return tuple(c.input_name for c in self.cameras)

    def camera(self, input_name: str) -> CameraInputConfig:
        for c in self.cameras:
            if c.input_name == input_name:
                return c
        raise UnknownInputError(f"unknown camera input {input_name!r} (configured: {list(self.input_names)})",
                                stream=input_name)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ObservationConfig":
        """Build from a plain map (see the class docstring); times are in seconds."""
        d = dict(d)
        cams_raw = d.pop("cameras", None)
        if not cams_raw:
            raise ValueError("ObservationConfig: 'cameras' map is required")
        cams = []
        for name, spec in dict(cams_raw).items():
            spec = dict(spec or {})
            standard = CameraInputConfig.standard(name)
            h, w = standard.height, standard.width
            if "resolution" in spec:
                h, w = (int(v) for v in spec.pop("resolution"))
            h = int(spec.pop("height", h))
            w = int(spec.pop("width", w))
            crop = bool(spec.pop("average_crop", standard.average_crop))
            topic = str(spec.pop("topic", ""))
            if spec:
                raise ValueError(f"ObservationConfig: unknown keys for camera {name}: {sorted(spec)}")
            cams.append(CameraInputConfig(name, topic, h, w, crop))
        try:
            layout = ProprioLayout.from_dict({k: d.pop(k) for k in ("joint_state", "proprio_normalization") if k in d})
        except ValueError as err:
            raise ValueError(f"ObservationConfig: {err}") from None
        kwargs: Dict[str, Any] = {
            "cameras": tuple(cams),
            "joint_names": layout.joint_names,
            "joint_state_topic": layout.sources[0].topic,
            "joint_state_sources": layout.sources,
            "proprio_normalization": layout.normalization,
        }
        seconds = {
            "slop_s": "slop_ns",
            "max_image_age_s": "max_image_age_ns",
            "max_joint_state_age_s": "max_joint_state_age_ns",
            "max_joint_lag_s": "max_joint_lag_ns",
            "min_step_interval_s": "min_step_interval_ns",
            "max_step_gap_s": "max_step_gap_ns",
            "max_future_stamp_s": "max_future_stamp_ns",
        }
        for k_s, k_ns in seconds.items():
            if k_s in d:
                kwargs[k_ns] = seconds_to_ns(d.pop(k_s))
        for k in ("window_size", "image_queue_size", "joint_queue_size", "max_image_pixels"):
            if k in d:
                kwargs[k] = int(d.pop(k))
        if "rate_hz" in d:
            kwargs["rate_hz"] = float(d.pop("rate_hz"))
        if d:
            raise ValueError(f"ObservationConfig: unknown keys {sorted(d)}")
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str, key: Optional[str] = "observation") -> "ObservationConfig":
        """Load from a YAML file; ``key`` selects a sub-map (None: the whole document)."""
        import yaml

        with open(path, "r", encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        if key is not None and key in doc:
            doc = doc[key]
        return cls.from_dict(doc)


# --------------------------------------------------------------------------- results


class StatusKind(str, enum.Enum):
    WAITING = "waiting"  # no data yet, or no new step since the last one (transient)
    STALE = "stale"  # a stream exceeded its freshness limit
    UNSYNCHRONIZED = "unsynchronized"  # cameras are fresh but no set agrees within slop


@dataclass(frozen=True)
class ObservationStatus:
    """Why :meth:`ObservationBuffer.assemble` produced no window."""

    kind: StatusKind
    reason: str
    stream: Optional[str] = None

    ready = False

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.reason}"


AssembleResult = Union[ObservationWindow, ObservationStatus]


@dataclass
class _Step:
    stamp_ns: int
    images: Dict[str, np.ndarray]
    image_stamps: Dict[str, int]
    proprio: np.ndarray
    joint_stamp: int
    joint_stamps: Dict[str, int]


# --------------------------------------------------------------------------- helpers


def _fmt_ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


# --------------------------------------------------------------------------- buffer


class ObservationBuffer:
    """Rolling Octo observation window from asynchronous camera and joint-state streams.

    Not thread-safe: call it from one thread (or guard it with a lock in the node)."""

    def __init__(self, config: ObservationConfig):
        self.config = config
        self._layout = config.proprio_layout
        self._sources = {s.topic: s for s in config.joint_state_sources}
        self.drop_counts: Dict[str, int] = {}
        self.reset()

    # ----------------------------------------------------------------- state

    def reset(self) -> None:
        """Forget all frames, joint states, last stamps and the window (start-up state)."""
        cfg = self.config
        self._frames: Dict[str, Deque[Tuple[int, np.ndarray]]] = {
            n: deque(maxlen=cfg.image_queue_size) for n in cfg.input_names
        }
        # per source topic: (stamp, positions in joint_names order (float64), which of them it carried)
        self._joints: Dict[str, Deque[Tuple[int, np.ndarray, np.ndarray]]] = {
            s.topic: deque(maxlen=cfg.joint_queue_size) for s in cfg.joint_state_sources
        }
        self._last_stamp: Dict[str, int] = {}
        self._window: Deque[_Step] = deque(maxlen=cfg.window_size)
        self._num_steps = 0

    def restart_window(self) -> None:
        """Drop the history only (the next window is padded again); queued frames are kept."""
        self._window.clear()
        self._num_steps = 0

    @property
    def num_steps(self) -> int:
        """Real steps in the current episode (since the last reset / restart)."""
        return self._num_steps

    # ----------------------------------------------------------------- input

    def _reject(self, err: PerceptionInputError, stream: str) -> PerceptionInputError:
        if err.stream is None:
            err.stream = stream
        self.drop_counts[stream] = self.drop_counts.get(stream, 0) + 1
        return err

    def _check_order(self, key: str, stamp_ns: int, label: str, now_ns: Optional[int]) -> None:
        """Refuse a stamp ahead of the clock (beyond ``max_future_stamp_ns``: it would become the
        ordering baseline and lock the stream out) or not newer than the last accepted one."""
        if now_ns is not None and stamp_ns > int(now_ns) + self.config.max_future_stamp_ns:
            raise StampInFutureError(
                f"stamp {stamp_ns} ns is {_fmt_ms(stamp_ns - int(now_ns))} ahead of the clock "
                f"(limit {_fmt_ms(self.config.max_future_stamp_ns)}): stamped in the future", stream=label)
        last = self._last_stamp.get(key)
        if last is not None and stamp_ns <= last:
            dup = stamp_ns == last
            what = "duplicate stamp" if dup else "out-of-order stamp"
            raise StampOrderError(
                f"{what} {stamp_ns} ns (last accepted {last} ns, {_fmt_ms(last - stamp_ns)} newer)",
                stream=label, duplicate=dup)

    def add_image(self, input_name: str, stamp_ns: int, rgb: np.ndarray, now_ns: Optional[int] = None) -> None:
        """Queue an ``(H, W, 3) uint8`` RGB frame (any resolution) for ``input_name``, received at
        ``now_ns`` (the clock ``assemble`` gets; None: no arrival check).

        Raises UnknownInputError, ImageLayoutError (bad array), StampInFutureError or
        StampOrderError; the frame is then dropped and the buffer is unchanged."""
        if input_name not in self._frames:
            raise self._reject(UnknownInputError(
                f"unknown camera input {input_name!r} (configured: {list(self.config.input_names)})"), input_name)
        label = self.config.camera(input_name).label
        stamp_ns = int(stamp_ns)
        try:
            arr = ensure_rgb_uint8(rgb, "image")
            self._check_order(input_name, stamp_ns, label, now_ns)
        except PerceptionInputError as err:
            raise self._reject(err, label) from None
        self._frames[input_name].append((stamp_ns, np.ascontiguousarray(arr)))
        self._last_stamp[input_name] = stamp_ns

    def add_image_msg(self, input_name: str, msg: Any, now_ns: Optional[int] = None) -> None:
        """Decode a ``sensor_msgs/Image`` or ``CompressedImage``-like message and queue it (its size
        checked against ``max_image_pixels`` before decoding).

        Raises any :class:`PerceptionInputError` (codec errors included) with the stream set."""
        label = self.config.camera(input_name).label if input_name in self._frames else input_name
        try:
            stamp = stamp_to_ns(msg.header.stamp)
            if input_name in self._frames:
                self._check_order(input_name, stamp, label, now_ns)  # cheap check before decoding
            rgb = decode_image_msg(msg, self.config.max_image_pixels)
        except PerceptionInputError as err:
            raise self._reject(err, label) from None
        self.add_image(input_name, stamp, rgb, now_ns)

    def _source(self, topic: Optional[str]) -> JointStateSourceConfig:
        if topic is None:
            if len(self._sources) == 1:
                return self.config.joint_state_sources[0]
            raise self._reject(UnknownInputError(
                f"joint state without a topic, but {len(self._sources)} joint_state sources are configured "
                f"({list(self._sources)}): pass topic="), "joint_state")
        src = self._sources.get(topic)
        if src is None:
            raise self._reject(UnknownInputError(
                f"unknown joint_state topic {topic!r} (configured: {list(self._sources)})"), f"joint_state ({topic})")
        return src

    def add_joint_state(self, stamp_ns: int, names: Sequence[str], positions: Sequence[float],
                        topic: Optional[str] = None, now_ns: Optional[int] = None) -> None:
        """Queue a joint state of source ``topic`` (may be omitted when there is one source);
        ``names``/``positions`` as in ``sensor_msgs/JointState`` (any order, extra joints
        ignored; names are prefixed with the source's prefix).

        Raises UnknownInputError (topic not configured), JointStateError (missing configured
        joints, none of them, length mismatch, duplicated names, a position not finite as float32),
        StampInFutureError (beyond the tolerance ahead of ``now_ns``) or StampOrderError."""
        src = self._source(topic)
        label = src.label
        stamp_ns = int(stamp_ns)
        try:
            vec, found = self._layout.parse(src.topic, names, positions)
            self._check_order(f"joint_state:{src.topic}", stamp_ns, label, now_ns)
        except PerceptionInputError as err:
            raise self._reject(err, label) from None
        self._joints[src.topic].append((stamp_ns, vec, found))
        self._last_stamp[f"joint_state:{src.topic}"] = stamp_ns

    def add_joint_state_msg(self, msg: Any, topic: Optional[str] = None, now_ns: Optional[int] = None) -> None:
        """Adapter for a ``sensor_msgs/JointState``-like message (reads header.stamp, name, position)."""
        self.add_joint_state(stamp_to_ns(msg.header.stamp), list(msg.name), list(msg.position), topic, now_ns)

    # ----------------------------------------------------------------- assembly

    def _stale(self, reason: str, stream: str) -> ObservationStatus:
        self.restart_window()
        return ObservationStatus(StatusKind.STALE, reason, stream)

    def _check_freshness(self, now_ns: int) -> Optional[ObservationStatus]:
        cfg = self.config
        for cam in cfg.cameras:
            q = self._frames[cam.input_name]
            if not q:
                return ObservationStatus(StatusKind.WAITING, f"no frame received yet on {cam.label}", cam.label)
            age = now_ns - q[-1][0]
            if age > cfg.max_image_age_ns:
                return self._stale(
                    f"newest frame on {cam.label} is {_fmt_ms(age)} old (limit {_fmt_ms(cfg.max_image_age_ns)})",
                    cam.label)
        if cfg.joint_names:
            for src in cfg.joint_state_sources:
                q = self._joints[src.topic]
                if not q:
                    return ObservationStatus(StatusKind.WAITING, f"no joint state received yet on {src.label}", src.label)
                age = now_ns - q[-1][0]
                if age > cfg.max_joint_state_age_ns:
                    return self._stale(
                        f"newest joint state on {src.label} is {_fmt_ms(age)} old "
                        f"(limit {_fmt_ms(cfg.max_joint_state_age_ns)})", src.label)
        return None

    def _find_synchronized_set(self, min_ref_stamp: Optional[int]) -> Optional[Dict[str, Tuple[int, np.ndarray]]]:
        """Newest set (one frame per input) with spread <= slop and a reference stamp
        >= ``min_ref_stamp``; reference = first configured input."""
        cfg = self.config
        ref_name = cfg.cameras[0].input_name
        others = [c.input_name for c in cfg.cameras[1:]]
        for ref_stamp, ref_img in reversed(self._frames[ref_name]):
            if min_ref_stamp is not None and ref_stamp < min_ref_stamp:
                break
            chosen = {ref_name: (ref_stamp, ref_img)}
            for name in others:
                best = min(self._frames[name], key=lambda f: (abs(f[0] - ref_stamp), -f[0]))
                chosen[name] = best
            stamps = [s for s, _ in chosen.values()]
            if max(stamps) - min(stamps) <= cfg.slop_ns:
                return chosen
        return None

    def _joint_at_or_before(self, topic: str, t_ns: int) -> Optional[Tuple[int, np.ndarray, np.ndarray]]:
        for entry in reversed(self._joints[topic]):
            if entry[0] <= t_ns:
                return entry
        return None

    def _proprio_at(self, step_stamp: int) -> Union[ObservationStatus, Tuple[np.ndarray, Dict[str, int]]]:
        """Each source's state at or before ``step_stamp`` (within the lag), merged in
        ``joint_names`` order (a joint from the first source carrying it), normalized."""
        cfg = self.config
        states = []
        stamps: Dict[str, int] = {}
        for src in cfg.joint_state_sources:
            js = self._joint_at_or_before(src.topic, step_stamp)
            if js is None:
                return ObservationStatus(
                    StatusKind.WAITING, f"no joint state at or before image time {step_stamp} on {src.label}",
                    src.label)
            stamp, vec, found = js
            lag = step_stamp - stamp
            if lag > cfg.max_joint_lag_ns:
                return self._stale(
                    f"joint state at or before image time is {_fmt_ms(lag)} older than the image "
                    f"(limit {_fmt_ms(cfg.max_joint_lag_ns)}) on {src.label}", src.label)
            states.append((vec, found))
            stamps[src.topic] = stamp
        values, missing = self._layout.merge(states)
        if missing:
            return ObservationStatus(
                StatusKind.WAITING, f"joints {missing} are in no joint state at or before image time {step_stamp} "
                f"(sources: {list(self._sources)})")
        return values, stamps

    def assemble(self, now_ns: int) -> AssembleResult:
        """Try to add one step at time ``now_ns`` and return the window, or a status.

        Returns ObservationWindow (a new step was added) or ObservationStatus with kind
        WAITING (no data yet / no new synchronized set / no joint state at or before the
        image time yet), STALE (a stream exceeded its limit; the window restarts) or
        UNSYNCHRONIZED (fresh cameras but no set within slop)."""
        cfg = self.config
        now_ns = int(now_ns)
        status = self._check_freshness(now_ns)
        if status is not None:
            return status

        last = self._window[-1] if self._window else None
        min_ref = None if last is None else last.stamp_ns + max(cfg.effective_min_step_interval_ns, 1)
        chosen = self._find_synchronized_set(min_ref)
        if chosen is None:
            newest = ", ".join(f"{c.input_name}={self._frames[c.input_name][-1][0]}" for c in cfg.cameras)
            if last is not None and self._find_synchronized_set(None) is not None:
                return ObservationStatus(
                    StatusKind.WAITING,
                    f"no synchronized frame set newer than the last step ({last.stamp_ns}) + "
                    f"{_fmt_ms(cfg.effective_min_step_interval_ns)} (newest stamps: {newest})")
            return ObservationStatus(
                StatusKind.UNSYNCHRONIZED,
                f"no camera frame set agrees within slop {_fmt_ms(cfg.slop_ns)} (newest stamps: {newest})")

        ref_name = cfg.cameras[0].input_name
        step_stamp = chosen[ref_name][0]
        for cam in cfg.cameras:
            age = now_ns - chosen[cam.input_name][0]
            if age > cfg.max_image_age_ns:
                return self._stale(
                    f"newest synchronized frame on {cam.label} is {_fmt_ms(age)} old "
                    f"(limit {_fmt_ms(cfg.max_image_age_ns)})", cam.label)

        if cfg.joint_names:
            merged = self._proprio_at(step_stamp)
            if isinstance(merged, ObservationStatus):
                return merged
            proprio, joint_stamps = merged
            joint_stamp = min(joint_stamps.values())
        else:
            joint_stamp, proprio, joint_stamps = -1, np.zeros(0, np.float32), {}

        if last is not None and step_stamp - last.stamp_ns > cfg.effective_max_step_gap_ns:
            self.restart_window()  # too long since the last step: the history is void

        images = {}
        for cam in cfg.cameras:
            images[cam.input_name] = resize_like_octo(
                chosen[cam.input_name][1], (cam.height, cam.width), average_crop=cam.average_crop)
        step = _Step(step_stamp, images, {n: s for n, (s, _) in chosen.items()}, proprio, joint_stamp, joint_stamps)
        if not self._window:
            for _ in range(cfg.window_size):  # HistoryWrapper.reset: fill with the first obs
                self._window.append(step)
        else:
            self._window.append(step)
        self._num_steps += 1
        return self._build_window()

    def _build_window(self) -> ObservationWindow:
        cfg = self.config
        steps: List[_Step] = list(self._window)
        w = cfg.window_size
        n_pad = w - min(self._num_steps, w)
        mask = np.ones(w, bool)
        mask[:n_pad] = False
        return ObservationWindow(
            images={c.input_name: np.stack([s.images[c.input_name] for s in steps]) for c in cfg.cameras},
            proprio=np.stack([s.proprio for s in steps]).astype(np.float32, copy=False).reshape(w, -1),
            stamps_ns=np.array([s.stamp_ns for s in steps], np.int64),
            proprio_names=cfg.joint_names,
            image_stamps_ns={c.input_name: np.array([s.image_stamps[c.input_name] for s in steps], np.int64)
                             for c in cfg.cameras},
            joint_state_stamps_ns=np.array([s.joint_stamp for s in steps], np.int64),
            timestep_pad_mask=mask,
            joint_state_stamps_by_topic={t: np.array([s.joint_stamps[t] for s in steps], np.int64)
                                         for t in (steps[-1].joint_stamps if steps else {})},
        )
