"""policy: observation windows + a task → Octo action chunks.

Loads one checkpoint at start-up. The task comes from ``~/set_instruction``
(octo_ros_msgs/SetInstruction), the ``instruction`` topic (std_msgs/String) or the
``goal_image`` topic (sensor_msgs/Image, reliable + transient-local); ``~/clear_task``
(std_srvs/Trigger) removes it. Inference runs on a worker thread on the newest
``observation_window`` only; each result is published on ``action_chunk``
stamped with the observation time. Status on ``~/status`` and ``/diagnostics``.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import torch
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from octo_ros.datatypes import ActionChunk, ObservationWindow
from octo_ros.inference.checkpoint_info import checkpoint_content_hash
from octo_ros.inference.runtime import (
    NO_TASK,
    LatencyStats,
    NewestSlot,
    Task,
    TaskError,
    check_device,
    default_torch_threads,
    goal_image_shape,
    log_text,
    model_batch,
    validate_goal_image,
    validate_instruction,
)
from octo_ros.inference.tokenizer import resolve_tokenizer
from octo_ros.model.policy import OctoPolicy, tune_malloc
from octo_ros.perception.image_codec import PerceptionInputError, decode_image_msg
from octo_ros.ros.messages import chunk_to_msg, window_from_msg
from octo_ros.ros.support import (
    ERROR,
    LATCHED_QOS,
    OK,
    WARN,
    WINDOW_QOS,
    Diagnostics,
    WarningThrottle,
    run_node,
)
from octo_ros_msgs.msg import ActionChunk as ActionChunkMsg
from octo_ros_msgs.msg import ObservationWindow as ObservationWindowMsg
from octo_ros_msgs.msg import PolicyStatus
from octo_ros_msgs.srv import SetInstruction


class PolicyNode(Node):
    def __init__(self, **kwargs):
        super().__init__("policy", **kwargs)
        checkpoint = self.declare_parameter("checkpoint", "").value
        if not checkpoint:
            raise ValueError("parameter 'checkpoint' is required: an Octo checkpoint directory")
        step = self.declare_parameter("checkpoint_step", -1).value
        device = self.declare_parameter("device", "auto").value
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        check_device(device)
        dtype = self.declare_parameter("dtype", "float32").value
        threads = self.declare_parameter("torch_threads", 0).value
        tokenizer = resolve_tokenizer(self.declare_parameter("tokenizer", "").value, checkpoint)
        self.dataset_key = self.declare_parameter("dataset_statistics_key", "").value or None
        self.step_period = self.declare_parameter("step_period", 0.2).value
        names = list(self.declare_parameter("action_dimension_names", [""]).value)
        self.goal_input = self.declare_parameter("goal_image_input", "image_primary").value
        self.seed = self.declare_parameter("seed", 0).value

        started = time.perf_counter()
        if device == "cpu":
            tune_malloc()  # this process runs the model: keep its activation memory mapped between calls
        self.policy = OctoPolicy.load(checkpoint, device=device, dtype=dtype, threads=threads or default_torch_threads(),
                                      step=None if step < 0 else step, tokenizer=tokenizer.path)
        if not self.policy.dataset_statistics:
            stats = Path(checkpoint) / "dataset_statistics.json"
            raise ValueError(f"{stats} is {'empty' if stats.is_file() else 'missing'}: the checkpoint has no "
                             "dataset statistics, so its actions cannot be unnormalized")
        if self.dataset_key is None and len(self.policy.dataset_keys) > 1:
            raise ValueError(f"checkpoint has statistics for several datasets {self.policy.dataset_keys}: "
                             "set 'dataset_statistics_key'")
        self.action_dim = len(self.policy.action_info(self.dataset_key)["mean"])
        if names == [""]:
            names = [f"a{i}" for i in range(self.action_dim)]
        if len(names) != self.action_dim:
            raise ValueError(f"action_dimension_names has {len(names)} names but the model's actions have "
                             f"{self.action_dim} dimensions")
        self.dimension_names = tuple(names)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.get_logger().info(
            f"loaded {self.policy.model_id} in {time.perf_counter() - started:.1f} s on {device} "
            f"({self.policy.describe()['dtype']}, asked {dtype}); "
            f"horizon {self.policy.action_horizon} x {self.action_dim} ({', '.join(names)}), "
            f"statistics '{self.dataset_key or next(iter(self.policy.dataset_keys), 'single dataset')}'"
            + (f"; tokenizer {tokenizer.path} ({tokenizer.source})" if tokenizer.path else ""))
        if tokenizer.path is None and self.policy.has_language:
            self.get_logger().warning(
                "no T5 tokenizer found (" + "; ".join(tokenizer.looked) + "): instructions are refused, goal images "
                f"only. Put t5-base's spiece.model into {Path(checkpoint) / 'spiece.model'} or pass tokenizer:=<file>")

        self._task_lock = threading.Lock()
        self.task: Task = NO_TASK
        self.windows: NewestSlot[ObservationWindow] = NewestSlot()
        self.latency = LatencyStats()
        self.sequence = 0
        self.state = PolicyStatus.WAITING_FOR_TASK
        self.state_message = "waiting for task"
        self.warnings = WarningThrottle(self)
        self.diagnostics = Diagnostics(self)

        tasks_group = MutuallyExclusiveCallbackGroup()
        self.chunk_publisher = self.create_publisher(ActionChunkMsg, "action_chunk", 10)
        self.status_publisher = self.create_publisher(PolicyStatus, "~/status", 10)
        self.create_subscription(ObservationWindowMsg, "observation_window", self._on_window, WINDOW_QOS)
        self.create_service(SetInstruction, "~/set_instruction", self._on_set_instruction, callback_group=tasks_group)
        self.create_service(Trigger, "~/clear_task", self._on_clear_task, callback_group=tasks_group)
        self.create_subscription(String, "instruction", self._on_instruction_topic, LATCHED_QOS, callback_group=tasks_group)
        self.create_subscription(Image, "goal_image", self._on_goal_image, LATCHED_QOS, callback_group=tasks_group)
        self.create_timer(1.0, self._publish_status)

        # hashing a GB-sized checkpoint takes seconds: off the start-up path
        self.checkpoint_hash = ""
        threading.Thread(target=self._hash_checkpoint, args=(checkpoint,), name="policy-hash", daemon=True).start()
        self._running = True
        self._worker = threading.Thread(target=self._inference_loop, name="policy-inference", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ task input
    def _set_task(self, task: Task) -> None:
        with self._task_lock:
            self.task = task
        self.get_logger().info(f"task: {log_text(task.describe())}")
        if task is NO_TASK:
            self._set_state(PolicyStatus.WAITING_FOR_TASK, "waiting for task")
        elif self.state != PolicyStatus.RUNNING:
            self._set_state(PolicyStatus.WAITING_FOR_OBSERVATION, "waiting for observation windows")
        self._publish_status()

    def _task_input(self, source: str, instruction: str | None = None, goal: Image | None = None) -> tuple[bool, str]:
        """The one validation of a task, however it arrives (service, topic, goal image): the new
        task is set, or nothing changes and the reason is logged (throttled per source)."""
        try:
            if goal is None:
                task = Task(instruction=validate_instruction(self.policy, instruction), goals=self.task.goals)
            else:
                height, width, _ = goal_image_shape(self.policy, self.goal_input)  # nothing larger is decoded
                rgb = validate_goal_image(self.policy, self.goal_input, decode_image_msg(goal, height * width))
                task = Task(instruction=self.task.instruction, goals={self.goal_input: rgb})
        except (PerceptionInputError, TaskError) as err:
            message = f"{source} rejected: {err}; task unchanged"
            self.warnings.warn(f"task:{source}:{type(err).__name__}", message)
            return False, message
        self._set_task(task)
        return True, f"task: {log_text(task.describe())}"

    def _on_set_instruction(self, request, response):
        response.success, response.message = self._task_input("instruction (~/set_instruction)", request.instruction)
        return response

    def _on_instruction_topic(self, msg: String) -> None:
        self._task_input("instruction topic", msg.data)

    def _on_goal_image(self, msg: Image) -> None:
        self._task_input("goal_image", goal=msg)

    def _on_clear_task(self, request, response):
        self._set_task(NO_TASK)
        response.success, response.message = True, "task cleared: no actions until a new task is given"
        return response

    # ------------------------------------------------------------------ inference
    def _on_window(self, msg: ObservationWindowMsg) -> None:
        try:
            window = window_from_msg(msg)
        except (ValueError, PerceptionInputError) as err:
            self.warnings.warn(f"window:{type(err).__name__}", f"observation_window: {err}; window dropped")
            return
        self.windows.put((time.perf_counter(), window))

    def _inference_loop(self) -> None:
        tasks_for: Task | None = None
        tasks = None
        while self._running:
            item = self.windows.take(timeout=0.5)
            if not self._running:
                break
            if item is None:
                if self.task is not NO_TASK and self.state == PolicyStatus.RUNNING:
                    self._set_state(PolicyStatus.WAITING_FOR_OBSERVATION, "waiting for observation windows")
                continue
            received, window = item
            with self._task_lock:
                task = self.task
            if task is NO_TASK:
                self._set_state(PolicyStatus.WAITING_FOR_TASK, "waiting for task")
                continue
            try:
                if task is not tasks_for:
                    tasks = self.policy.create_tasks(
                        texts=[task.instruction] if task.instruction else None,
                        goals={k: v[None] for k, v in task.goals.items()} if task.goals else None)
                    tasks_for = task
                batch = model_batch(window, self.policy.observation_keys, self.policy.max_window,
                                    self.policy.proprio_statistics(self.dataset_key))
                out = self.policy.sample_actions(batch, tasks, dataset_key=self.dataset_key, generator=self.generator)
            except Exception as err:  # noqa: BLE001 - the worker must outlive any one bad inference
                self._set_state(PolicyStatus.ERROR, f"inference failed: {type(err).__name__}: {err}")
                self.warnings.warn(f"inference:{type(err).__name__}",
                                   f"inference failed: {type(err).__name__}: {err}; no chunk published")
                continue
            latency = time.perf_counter() - received
            self.latency.add(latency)
            chunk = ActionChunk(stamp_ns=window.stamp_ns, sequence=self.sequence, actions=out.unnormalized[0],
                          normalized=out.normalized[0], dimension_names=self.dimension_names,
                          step_period_s=self.step_period, model_id=self.policy.model_id,
                          task=task.describe(), inference_latency_s=latency)
            with self._task_lock:
                if self.task is not task:  # cleared or replaced during inference: not for this task
                    continue
            if not self.context.ok():  # shutting down (Ctrl-C): nothing to publish to
                break
            self.chunk_publisher.publish(chunk_to_msg(chunk))
            self.sequence += 1
            self._set_state(PolicyStatus.RUNNING, f"running: {task.describe()}")

    # ------------------------------------------------------------------ status
    def _set_state(self, state: int, message: str) -> None:
        changed = state != self.state
        self.state, self.state_message = state, message
        if changed:
            self._publish_status()

    def _publish_status(self) -> None:
        p50, p95 = self.latency.percentiles()
        with self._task_lock:
            task = self.task
        status = PolicyStatus(state=self.state, message=self.state_message, model_id=self.policy.model_id,
                              task_kind=task.kind, instruction=task.instruction or "",
                              chunks_published=self.sequence, windows_dropped=self.windows.dropped,
                              latency_p50=p50, latency_p95=p95)
        status.header.stamp = self.get_clock().now().to_msg()
        self.status_publisher.publish(status)
        level = {PolicyStatus.RUNNING: OK, PolicyStatus.ERROR: ERROR}.get(self.state, WARN)
        self.diagnostics.publish(level, self.state_message, {
            "model_id": self.policy.model_id, "task": task.describe(), "chunks_published": self.sequence,
            "windows_dropped": self.windows.dropped, "latency_p50_s": f"{p50:.4f}", "latency_p95_s": f"{p95:.4f}",
            # evidence the recorder stores with each episode ('' until hashed)
            "checkpoint_hash": self.checkpoint_hash})

    def _hash_checkpoint(self, checkpoint: str) -> None:
        try:
            self.checkpoint_hash = checkpoint_content_hash(checkpoint)
        except OSError as err:
            self.get_logger().warning(f"cannot hash the checkpoint {checkpoint} for the episode evidence: {err}")

    def close(self) -> None:
        self._running = False
        self.windows.close()
        self._worker.join(timeout=10)


def main() -> None:
    # two threads: task services and observation windows are served while inference runs
    run_node(PolicyNode, "policy", threads=2)


if __name__ == "__main__":
    main()
