"""Robot namespaces isolate: two simulated WidowX graphs and one simulated UR5 graph on one ROS
domain, each under its own namespace (buffer, adapter, simulator as `octo-ros launch ... namespace:=`
starts them). Every topic and service lives under a robot namespace, each buffer's windows carry
only its own camera frames and joint states, and each adapter's commands move only its own robot."""
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState

from octo_ros.control.kinematics import forward_kinematics
from octo_ros.control.teleop import DELTA_ACTION_NAMES
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS, ARMS
from octo_ros.ros.graph import describe
from octo_ros.ros.launcher import node_command, write_params_file
from octo_ros.ros.messages import ns_to_stamp
from octo_ros.timebase import stamp_to_ns
from octo_ros_msgs.msg import ActionChunk, ObservationWindow

# cell -> (robot, proprio joint that tells the robots apart, its value at the start)
CELLS = {"cell_a": ("widowx", "waist", 0.0), "cell_b": ("widowx", "waist", 0.3), "cell_c": ("ur5", "gripper", None)}
# What the domain carries for everyone (ROS conventions): the log, parameter events, diagnostics.
GLOBAL_TOPICS = {"/rosout", "/parameter_events", "/diagnostics"}


def cell_specs(cell: str):
    robot, joint, start = CELLS[cell]
    sim = "widowx_sim" if robot == "widowx" else "ur5_sim"
    arguments = {
        "namespace": cell, "dry_run": "false",
        "observation_buffer.cameras": "{image_primary: {topic: camera/image_raw, height: 64, width: 64}}",
        "observation_buffer.proprio_joints": f"[{joint}]",
        # nine nodes on a shared machine: frames come late; freshness is not what this test is about
        "observation_buffer.max_image_age_s": "2.0", "observation_buffer.max_joint_lag_s": "0.5",
        f"{sim}.image_width": "64", f"{sim}.image_height": "48", f"{sim}.render_rate": "5.0",
    }
    if robot == "widowx":  # cell_b's arm starts turned (still inside the workspace box): its joints differ
        arguments["widowx_sim.initial_pose"] = f"[{start}, 0.022, 0.1831, 0.0, 1.3657, 0.0]"
        arguments["widowx_sim.update_rate"] = "50.0"
    return [spec for spec in describe(robot, sim=True, arguments=arguments) if spec.name != "policy"]


class Stamps:
    """Header stamps (ns) of one topic, and the newest message."""

    def __init__(self, node, msg_type, topic, qos=10):
        self.lock = threading.Lock()
        self.stamps: set[int] = set()
        self.last = None
        node.create_subscription(msg_type, topic, self._cb, qos)

    def _cb(self, msg):
        with self.lock:
            self.stamps.add(stamp_to_ns(msg.header.stamp))
            self.last = msg


class Windows:
    def __init__(self, node, topic):
        self.lock = threading.Lock()
        self.items: list[ObservationWindow] = []
        node.create_subscription(ObservationWindow, topic, self._cb, 10)

    def _cb(self, msg):
        with self.lock:
            self.items.append(msg)


def _chunk(node, action) -> ActionChunk:
    msg = ActionChunk(horizon=4, action_dim=7, step_period=0.2, dimension_names=list(DELTA_ACTION_NAMES))
    msg.header.stamp = ns_to_stamp(node.get_clock().now().nanoseconds)
    msg.actions = msg.normalized = np.tile(np.asarray(action, np.float32), 4).tolist()
    return msg


def _wx_x(js: JointState) -> float:
    index = {n: i for i, n in enumerate(js.name)}
    return float(forward_kinematics(ARMS["wx250s"], np.array([js.position[index[j]] for j in ARM_JOINTS]))[0, 3])


def test_three_robots_in_three_namespaces_share_one_domain(ros, tmp_path):
    for cell in CELLS:
        (tmp_path / cell).mkdir()
        for spec in cell_specs(cell):
            ros.spawn(f"{cell}.{spec.name}", node_command(spec, write_params_file(spec, tmp_path / cell))[1:])
    node = ros.node("isolation_probe", namespace="/probe")
    cameras = {cell: Stamps(node, Image, f"/{cell}/camera/image_raw", qos_profile_sensor_data) for cell in CELLS}
    windows = {cell: Windows(node, f"/{cell}/observation_window") for cell in CELLS}
    joints = {cell: Stamps(node, JointState, f"/{cell}/{'wx250s/' if CELLS[cell][0] == 'widowx' else ''}joint_states")
              for cell in CELLS}
    tcp = Stamps(node, PoseStamped, "/cell_c/tcp_pose")
    chunk_pubs = {cell: node.create_publisher(ActionChunk, f"/{cell}/action_chunk", 10) for cell in CELLS}

    def real_windows(cell):
        with windows[cell].lock:
            return [w for w in windows[cell].items if all(w.timestep_pad_mask)]

    def own_frames(cell) -> set[int]:
        """Window step stamps that are frames of the cell's own camera (the probe sees a camera
        only once its subscription matched: earlier windows hold frames it never saw)."""
        with cameras[cell].lock:
            own = set(cameras[cell].stamps)
        return {stamp_to_ns(s) for w in real_windows(cell) for s in w.step_stamps} & own

    ros.wait_for(lambda: all(len(own_frames(c)) >= 3 for c in CELLS) and tcp.last is not None, 120.0,
                 "unpadded windows holding three frames the probe saw from every buffer's own camera")

    # Every topic and service of the three graphs is under its robot's namespace.
    topics = {name for name, _ in node.get_topic_names_and_types()} - GLOBAL_TOPICS
    services = {name for name, _ in node.get_service_names_and_types()}
    outside = sorted(n for n in topics | services if not n.startswith(("/cell_a/", "/cell_b/", "/cell_c/", "/probe/")))
    assert not outside, f"names outside the robot namespaces: {outside}"
    for cell, (robot, _, _) in CELLS.items():
        assert f"/{cell}/observation_buffer/reset" in services and f"/{cell}/{robot}_adapter/set_dry_run" in services
    assert "/cell_a/wx250s/commands/joint_group" in topics and "/cell_b/wx250s/reset" in services

    # Each buffer's windows: its own camera's frames, its own robot's joints.
    for cell, (_, _, start) in CELLS.items():
        others = set().union(*(cameras[c].stamps for c in CELLS if c != cell))
        steps = [stamp_to_ns(s) for w in real_windows(cell) for s in w.step_stamps]
        assert not set(steps) & others, f"{cell}'s windows hold another robot's camera frames"
        proprio = np.array([v for w in real_windows(cell) for v in w.proprio])
        if start is None:  # the UR5: the Robotiq position its own adapter reports
            start = joints[cell].last.position[joints[cell].last.name.index("gripper")]
        np.testing.assert_allclose(proprio, start, atol=1e-3, err_msg=f"{cell}'s proprio is not its robot's")

    # Each adapter's commands reach only its own robot: a forward, b backward, c up.
    x0 = {cell: _wx_x(joints[cell].last) for cell in ("cell_a", "cell_b")}
    z0 = tcp.last.pose.position.z
    actions = {"cell_a": [0.01, 0, 0, 0, 0, 0, 1.0], "cell_b": [-0.01, 0, 0, 0, 0, 0, 1.0],
               "cell_c": [0, 0, 0.01, 0, 0, 0, 1.0]}
    deadline = time.monotonic() + 60.0

    def moved() -> bool:
        return (_wx_x(joints["cell_a"].last) > x0["cell_a"] + 0.02 and _wx_x(joints["cell_b"].last) < x0["cell_b"] - 0.02
                and tcp.last.pose.position.z > z0 + 0.02)

    while not moved():
        assert time.monotonic() < deadline, (
            f"x {x0} -> {_wx_x(joints['cell_a'].last):.3f}, {_wx_x(joints['cell_b'].last):.3f}; "
            f"z {z0:.3f} -> {tcp.last.pose.position.z:.3f}")
        for cell, action in actions.items():
            chunk_pubs[cell].publish(_chunk(node, action))
        time.sleep(0.2)
    assert all(proc.alive() for proc in ros.processes)
