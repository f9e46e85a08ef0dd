"""Synthetic camera and joint-state publishers for node tests (real messages over DDS)."""
from __future__ import annotations

import threading

import numpy as np
from sensor_msgs.msg import Image, JointState

from octo_ros.ros.messages import image_to_msg, ns_to_stamp
from octo_ros.ros.support import SENSOR_QOS


class SensorStreams:
    """Publishes a camera (rgb8 Image) and joint states from a node's timers, with
    stamps from the node's clock. ``image`` may be replaced at any time; ``paused``
    stops the camera (joint states go on)."""

    def __init__(self, node, camera_topic="/cam/image_raw", joint_topic="/joint_states",
                 joints=("j1", "j2", "j3"), camera_hz=10.0, joint_hz=50.0, size=(96, 128)):
        self.node = node
        self.joints = list(joints)
        rng = np.random.default_rng(0)
        self.image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        self.paused = threading.Event()
        self.sent_stamps: list[int] = []
        self.camera = node.create_publisher(Image, camera_topic, SENSOR_QOS)
        self.joint_states = node.create_publisher(JointState, joint_topic, SENSOR_QOS)
        node.create_timer(1.0 / camera_hz, self._publish_image)
        node.create_timer(1.0 / joint_hz, self._publish_joints)

    def _publish_image(self):
        if self.paused.is_set():
            return
        now = self.node.get_clock().now().nanoseconds
        self.camera.publish(image_to_msg(self.image, now))
        self.sent_stamps.append(now)

    def _publish_joints(self):
        msg = JointState(name=self.joints, position=[0.1 * i for i in range(len(self.joints))])
        msg.header.stamp = ns_to_stamp(self.node.get_clock().now().nanoseconds)
        self.joint_states.publish(msg)
