"""The data that flows from sensor to command, one type per concept: :class:`ObservationWindow`
(the observation buffer's output, the policy's input) and :class:`ActionChunk` (the policy's
output, what adapters execute and the bag reader reads back). Their ROS messages
(``octo_ros_msgs/ObservationWindow``, ``ActionChunk``) are the wire form; ``octo_ros.ros.messages``
converts. Pure (numpy); every room may import this module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from octo_ros.timebase import stamp_to_ns


@dataclass(frozen=True)
class ObservationWindow:
    """One Octo observation window (oldest step first, no batch axis).

    images: input name -> (W, H, W_img, 3) uint8 RGB at the model resolution
    proprio: (W, D) float32 joint positions in ``proprio_names`` order (D may be 0), normalized
        for the joints in the buffer's ``proprio_normalization``
    stamps_ns: (W,) int64 step stamps (the reference camera's frame stamp)
    timestep_pad_mask: (W,) bool, True = real step; padded slots are copies of the first real step
    proprio_names: the D joint names of ``proprio``
    image_stamps_ns: input name -> (W,) int64 stamps of the frames used
    joint_state_stamps_ns: (W,) int64 stamps of the joint states used, the oldest of the sources'
        (-1 if no joints configured; None: not known, a window received over ROS does not carry them)
    joint_state_stamps_by_topic: source topic -> (W,) int64 stamps of its joint states used
        (empty if no joints configured or not known)
    """

    images: Dict[str, np.ndarray]
    proprio: np.ndarray
    stamps_ns: np.ndarray
    timestep_pad_mask: np.ndarray
    proprio_names: Tuple[str, ...] = ()
    image_stamps_ns: Dict[str, np.ndarray] = field(default_factory=dict)
    joint_state_stamps_ns: Optional[np.ndarray] = None
    joint_state_stamps_by_topic: Dict[str, np.ndarray] = field(default_factory=dict)

    ready = True

    @property
    def stamp_ns(self) -> int:
        """The newest step's stamp: what a chunk computed from this window is stamped with."""
        return int(self.stamps_ns[-1])

    @property
    def window_size(self) -> int:
        return int(self.timestep_pad_mask.shape[0])

    @property
    def num_real_steps(self) -> int:
        return int(self.timestep_pad_mask.sum())


#: ``ActionChunk.source``: who produced a chunk. An empty source (bags recorded before the
#: field existed) is a policy's.
POLICY_SOURCE = "policy"
TELEOP_SOURCE = "teleop"


@dataclass(frozen=True)
class ActionChunk:
    """Actions for consecutive policy steps: row ``i`` is meant for ``stamp_ns + i * step_period_s``,
    ``stamp_ns`` being the time of the newest observation the chunk was computed from.

    actions: (horizon, action_dim), unnormalized
    normalized: the same in the model's normalized space (None: not known)
    """

    stamp_ns: int
    actions: np.ndarray
    step_period_s: float
    dimension_names: Tuple[str, ...] = ()
    source: str = POLICY_SOURCE
    sequence: int = 0
    normalized: Optional[np.ndarray] = None
    model_id: str = ""
    task: str = ""
    inference_latency_s: float = 0.0

    @classmethod
    def from_msg(cls, msg) -> "ActionChunk":
        """The fields of an ``octo_ros_msgs/ActionChunk`` message, rclpy's or rosbags' (no checks:
        ``octo_ros.ros.messages.chunk_from_msg`` checks what arrives over ROS). ``normalized`` of
        another size than ``actions`` is not known."""
        shape = (int(msg.horizon), int(msg.action_dim))
        normalized = np.asarray(msg.normalized, dtype=np.float32)
        return cls(
            stamp_ns=stamp_to_ns(msg.header.stamp), actions=np.asarray(msg.actions, dtype=np.float32).reshape(shape),
            step_period_s=float(msg.step_period), dimension_names=tuple(msg.dimension_names),
            source=getattr(msg, "source", "") or POLICY_SOURCE,  # older bags' definition has no source
            sequence=int(msg.sequence),
            normalized=normalized.reshape(shape) if normalized.size == shape[0] * shape[1] else None,
            model_id=msg.model_id, task=msg.task, inference_latency_s=float(msg.inference_latency),
        )
