"""The operator side of `octo-ros collect` (octo_ros.ros.collect): one rclpy node in the
collecting process that sends a scripted expert's inputs to the teleop node (a Twist and a gripper
command, or the two leader arms' joint states), follows the simulator's ``~/task_status``, and calls
the services that lay out, arm and record an episode. The node sits in the graph's namespace and
names everything relative to it, so it drives that graph only."""
from __future__ import annotations

import threading
import time
from typing import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from std_srvs.srv import SetBool, Trigger

from octo_ros.robots.bimanual.expert import LEADER_JOINTS, leader_joint_positions
from octo_ros.robots.bimanual.teleop import SIDES, LeaderTeleopConfig
from octo_ros.ros.collect import LOG_NAME
from octo_ros.ros.messages import task_status_from_msg
from octo_ros_msgs.srv import StartEpisode, StopEpisode


class Operator:
    """This process's ROS side: the expert's inputs to the teleop node, the simulator's task
    status, and the service calls that reset, arm and record."""

    def __init__(self, robot: str, graph, node_names: tuple[str, str], node_name: str = "octo_ros_collect"):
        self.robot, self.graph = robot, graph
        self.adapter, self.sim = node_names
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        namespace = next((spec.namespace for spec in graph.specs), "")  # one graph, one namespace
        self.node = Node(node_name, namespace=f"/{namespace}", context=self.context)
        self._lock = threading.Lock()
        self.status = None
        self.statuses = 0
        self.node.create_subscription(DiagnosticStatus, f"{self.sim}/task_status", self._on_status, 10)
        if robot == "bimanual":
            self.leaders = {side: self.node.create_publisher(JointState, f"leader_{side}/joint_states", 10)
                            for side in SIDES}
        else:
            self.twist = self.node.create_publisher(Twist, "spacenav/twist", 10)
            self.gripper = self.node.create_publisher(Float64, "teleop/gripper", 10)
        # callbacks run on the spin thread itself: once it has stopped none is left running when the
        # executor is shut down (a pool worker's would then trigger a destroyed guard condition)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinning = True
        self._spin = threading.Thread(target=self._spin_loop, daemon=True, name="collect-executor")
        self._spin.start()

    def _spin_loop(self) -> None:
        while self._spinning and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # the context shut down under us
                if self.context.ok():
                    raise

    def _on_status(self, msg) -> None:
        try:
            status = task_status_from_msg(msg)
        except ValueError:
            return
        with self._lock:
            self.status, self.statuses = status, self.statuses + 1

    def latest(self):
        with self._lock:
            return self.status, self.statuses

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.graph.check():
                raise RuntimeError(f"{', '.join(self.graph.failed)} died while waiting for {what} (see {LOG_NAME})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:g} s waiting for {what} (see {LOG_NAME})")
            time.sleep(0.01)

    def call(self, srv_type, name: str, request, timeout: float = 60.0):
        client = self.node.create_client(srv_type, name)
        try:
            self.wait(lambda: client.service_is_ready(), timeout, f"the service {name}")
            future = client.call_async(request)
            self.wait(future.done, timeout, f"an answer from {name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    # services -------------------------------------------------------------------------------
    def lay_out(self, task: str, seed: int) -> str:
        params = [Parameter(name="episode_task", value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=task)),
                  Parameter(name="episode_seed", value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=seed))]
        results = self.call(SetParameters, f"{self.sim}/set_parameters", SetParameters.Request(parameters=params)).results
        refused = [r.reason for r in results if not r.successful]
        if refused:
            raise RuntimeError(f"{self.sim} refused the episode: {'; '.join(refused)}")
        reply = self.call(Trigger, f"{self.sim}/reset_episode", Trigger.Request())
        if not reply.success:
            raise RuntimeError(f"{self.sim} could not lay out the episode: {reply.message}")
        _, count = self.latest()
        self.wait(lambda: self.latest()[1] > count + 1 and self.latest()[0].seed == seed, 10.0, "the new episode's status")
        return reply.message

    def arm(self, armed: bool) -> None:
        reply = self.call(SetBool, f"{self.adapter}/set_dry_run", SetBool.Request(data=not armed))
        if not reply.success:
            raise RuntimeError(f"{self.adapter} refused to {'arm' if armed else 'disarm'}: {reply.message}")

    def _recorder(self, srv_type, service: str, what: str, metadata: dict, **fields) -> str:
        request = srv_type.Request(**fields, metadata=[KeyValue(key=k, value=str(v)) for k, v in metadata.items()])
        reply = self.call(srv_type, f"recorder/{service}", request)
        if not reply.success:
            raise RuntimeError(f"the recorder did not {what}: {reply.message}")
        return reply.bag_path

    def start_episode(self, instruction: str, metadata: dict[str, str]) -> str:
        return self._recorder(StartEpisode, "start_episode", "start an episode", metadata, instruction=instruction)

    def stop_episode(self, outcome: str, notes: dict[str, str]) -> str:
        return self._recorder(StopEpisode, "stop_episode", "stop the episode cleanly", notes, outcome=outcome)

    # operator inputs ----------------------------------------------------------------------------
    def send_twist(self, velocity, gripper: float, linear_scale: float) -> None:
        msg = Twist()
        msg.linear.x, msg.linear.y, msg.linear.z = (float(v) / linear_scale for v in velocity)
        self.twist.publish(msg)
        self.gripper.publish(Float64(data=float(gripper)))

    def send_leaders(self, action14, config: LeaderTeleopConfig) -> None:
        """The leader arms' joint states the teleop node (with ``config``) maps to ``action14``."""
        stamp = self.node.get_clock().now().to_msg()
        for side, positions in leader_joint_positions(action14, config).items():
            msg = JointState(name=list(LEADER_JOINTS), position=[float(v) for v in positions])
            msg.header.stamp = stamp
            self.leaders[side].publish(msg)

    def close(self) -> None:
        # the spin thread first: a callback still running at shutdown fails, and its task prints "The
        # following exception was never retrieved" at exit
        self._spinning = False
        self._spin.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()


