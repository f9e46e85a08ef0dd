"""One checkpoint serving several robots, without ROS: the policy's configuration (every default
of the policy node), loading the checkpoint, a slot per robot (its newest window, task, dataset
statistics, latency) and the batcher that runs the windows ready together as one
``sample_actions`` call.

A batch row is computed as that robot's call alone would be: its own task tensors, its own
generator for the diffusion noise, its own statistics for un-normalization. Rows whose inputs
cannot share a forward pass (window length, image inputs, the embodiment's action dimension)
go into separate calls. A ready window waits at most ``batching_window_s`` for the windows of
the other robots that have a task, however slow or dead their sources are.
"""
from __future__ import annotations

import dataclasses
import enum
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np
import torch

from octo_ros.datatypes import ActionChunk, ObservationWindow
from octo_ros.inference.checkpoint_info import checkpoint_content_hash
from octo_ros.inference.runtime import (
    NO_TASK,
    LatencyStats,
    Task,
    check_device,
    default_torch_threads,
    goal_image_shape,
    model_batch,
    validate_goal_image,
    validate_instruction,
)
from octo_ros.inference.tokenizer import resolve_tokenizer
from octo_ros.model.normalization import select_statistics, unnormalize_actions
from octo_ros.model.policy import OctoPolicy, tune_malloc

#: A robot with a task whose windows stopped this long ago is reported as waiting for them.
IDLE_AFTER_S = 0.5


@dataclass(frozen=True)
class PolicyConfig:
    """The policy node's settings; its parameters are these names (``step_period_s`` ->
    ``step_period``). ``dataset_statistics_key`` and ``action_dimension_names`` are also each
    robot's, unless the robot has its own (:class:`RobotConfig`)."""

    checkpoint: str = ""  # required: an Octo checkpoint directory
    checkpoint_step: int = -1  # -1: the newest
    device: str = "auto"  # auto: cuda when available
    dtype: str = "float32"
    torch_threads: int = 0  # 0: default_torch_threads()
    tokenizer: str = ""  # how resolve_tokenizer finds T5's spiece.model ('': the checkpoint folder, the cache)
    dataset_statistics_key: str = ""  # '': the checkpoint's only dataset
    step_period_s: float = 0.2
    action_dimension_names: tuple[str, ...] = ()  # (): a0, a1, ...
    goal_image_input: str = "image_primary"
    seed: int = 0
    robots: tuple[str, ...] = ("",)  # robot namespaces served; '': the node's own relative names
    batching_window_s: float = 0.03  # the longest a ready window waits for the other robots' windows


@dataclass(frozen=True)
class RobotConfig:
    """What may differ between the robots one checkpoint serves."""

    dataset_statistics_key: str = ""
    action_dimension_names: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: PolicyConfig) -> "RobotConfig":
        return cls(config.dataset_statistics_key, config.action_dimension_names)


#: A robot namespace without its leading slash ('' : the server's own relative names).
ROBOT_NAME = re.compile(r"([A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*)?")
ROBOT_FIELDS = tuple(f.name for f in dataclasses.fields(RobotConfig))


def check_robot_names(names) -> None:
    """ValueError naming an entry of ``robots`` that is not a robot namespace, or a repeated one."""
    for name in names:
        if not ROBOT_NAME.fullmatch(name):
            raise ValueError(f"robots: {name!r} is not a robot namespace (names like cell1 or lab/cell1)")
    if len(set(names)) != len(names):
        raise ValueError(f"robots: {list(names)} names a robot twice")


def robot_parameter(name: str) -> tuple[str, str] | None:
    """(robot, RobotConfig field) for a per-robot parameter name (``lab.cell1.dataset_statistics_key``
    -> ``lab/cell1``); None for any other."""
    robot, _, field_name = name.rpartition(".")
    return (robot.replace(".", "/"), field_name) if robot and field_name in ROBOT_FIELDS else None


def robot_parameter_prefix(robot: str) -> str:
    return robot.replace("/", ".") + "."


class RobotState(enum.IntEnum):
    """A served robot's state (the values of octo_ros_msgs/PolicyStatus.state)."""

    WAITING_FOR_TASK = 0
    WAITING_FOR_OBSERVATION = 1
    RUNNING = 2
    ERROR = 3


def load_policy(config: PolicyConfig) -> tuple[OctoPolicy, str, str]:
    """The checkpoint ``config`` names, loaded once; a line saying what was loaded, and a warning
    ('' if none). ValueError (or OSError) naming what is wrong with the configuration or files."""
    if not config.checkpoint:
        raise ValueError("parameter 'checkpoint' is required: an Octo checkpoint directory")
    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    check_device(device)
    tokenizer = resolve_tokenizer(config.tokenizer, config.checkpoint)
    started = time.perf_counter()
    if device == "cpu":
        tune_malloc()  # this process runs the model: keep its activation memory mapped between calls
    step = None if config.checkpoint_step < 0 else config.checkpoint_step
    policy = OctoPolicy.load(config.checkpoint, device=device, dtype=config.dtype, step=step, tokenizer=tokenizer.path,
                             threads=config.torch_threads or default_torch_threads())
    if not policy.dataset_statistics:
        stats = Path(config.checkpoint) / "dataset_statistics.json"
        raise ValueError(f"{stats} is {'empty' if stats.is_file() else 'missing'}: the checkpoint has no dataset "
                         "statistics, so its actions cannot be unnormalized")
    loaded = (f"loaded {policy.model_id} in {time.perf_counter() - started:.1f} s on {device} "
              f"({policy.describe()['dtype']}, asked {config.dtype}); horizon {policy.action_horizon}"
              + (f"; tokenizer {tokenizer.path} ({tokenizer.source})" if tokenizer.path else ""))
    warning = ""
    if tokenizer.path is None and policy.has_language:
        warning = ("no T5 tokenizer found (" + "; ".join(tokenizer.looked) + "): instructions are refused, goal "
                   f"images only. Put t5-base's spiece.model into {Path(config.checkpoint) / 'spiece.model'} "
                   "or pass tokenizer:=<file>")
    return policy, loaded, warning


def window_layout_problem(policy: OctoPolicy, window: ObservationWindow) -> str:
    """Why the window does not fit the checkpoint's observation layout ('' when it does): the
    model's image inputs at their sizes, its proprio dimension."""
    inputs = policy.observation_keys
    images = [k for k in inputs if k.startswith("image_")]
    given = [k for k in window.images if k in inputs]
    if images and not given:
        return (f"the window has images {', '.join(sorted(window.images)) or 'none'}; "
                f"the model takes {', '.join(images)}")
    for name in given:
        shape = tuple(window.images[name].shape[1:])
        if shape != tuple(inputs[name]):
            return f"{name} frames are {_size(shape)}; the model takes {_size(inputs[name])}"
    if "proprio" in inputs and window.proprio.shape[-1] != inputs["proprio"][0]:
        return (f"proprio has {window.proprio.shape[-1]} values ({', '.join(window.proprio_names) or 'none'}); "
                f"the model takes {inputs['proprio'][0]}")
    return ""


def _size(shape) -> str:
    """(H, W, C) as 'WxH RGB' (or the shape as it is)."""
    return f"{shape[1]}x{shape[0]} RGB" if len(shape) == 3 and shape[2] == 3 else f"shape {tuple(shape)}"


def stack_tasks(tasks: list[Mapping]) -> dict:
    """Per-row task dicts of ``OctoPolicy.create_tasks`` (batch 1 each) as one batch."""
    out = {}
    for key, first in tasks[0].items():
        parts = [t[key] for t in tasks]
        if isinstance(first, Mapping):
            out[key] = stack_tasks(parts)
        elif isinstance(first, torch.Tensor):
            out[key] = torch.cat(parts)
        else:
            out[key] = np.concatenate(parts)
    return out


def _action_dim(stats: Mapping) -> int:
    return len(stats["mean"] if "mean" in stats else stats["p01"])


@dataclass
class BatchRow:
    """One robot's part of a batch: its window, task tensors, statistics and generator."""

    observations: dict
    tasks: dict
    action_statistics: Mapping
    generator: torch.Generator


def batch_key(row: BatchRow) -> tuple:
    """Rows with equal keys can share one forward pass."""
    return (tuple((k, v.shape, v.dtype.str) for k, v in sorted(row.observations.items())),
            _action_dim(row.action_statistics))


def sample_batch(policy: OctoPolicy, rows: list[BatchRow]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(normalized, unnormalized) actions (horizon, dim) for each row of one :func:`batch_key`,
    from one ``sample_actions`` call: each row's noise from its own generator, each row
    unnormalized with its own statistics (the call's statistics only set the embodiment's
    action dimension, equal for all rows)."""
    observations = {k: np.concatenate([r.observations[k] for r in rows]) for k in rows[0].observations}
    out = policy.sample_actions(observations, stack_tasks([r.tasks for r in rows]),
                                unnormalization_statistics=rows[0].action_statistics,
                                generator=[r.generator for r in rows])
    return [(out.normalized[i], unnormalize_actions(out.normalized[i], r.action_statistics)) for i, r in enumerate(rows)]


@dataclass
class RobotSlot:
    """Everything the server keeps for one robot."""

    name: str
    dataset_key: Optional[str]
    dimension_names: tuple[str, ...]
    action_statistics: Mapping
    proprio_statistics: Optional[Mapping]
    generator: torch.Generator
    task: Task = NO_TASK
    task_tensors: tuple[Task, dict] | None = None  # the model's tensors of the task they were made for
    pending: tuple[float, ObservationWindow] | None = None  # newest window not yet served (perf_counter at receipt)
    last_window_at: float = float("-inf")
    windows_dropped: int = 0
    chunks_published: int = 0
    latency: LatencyStats = field(default_factory=LatencyStats)
    state: RobotState = RobotState.WAITING_FOR_TASK
    message: str = "waiting for task"


@dataclass(frozen=True)
class RobotStatus:
    name: str
    state: RobotState
    message: str
    task: Task
    dataset_key: str
    chunks_published: int
    windows_dropped: int
    latency_p50_s: float
    latency_p95_s: float

    def values(self) -> dict[str, object]:
        """The robot's diagnostics values."""
        return {"task": self.task.describe(), "dataset_statistics_key": self.dataset_key,
                "chunks_published": self.chunks_published, "windows_dropped": self.windows_dropped,
                "latency_p50_s": f"{self.latency_p50_s:.4f}", "latency_p95_s": f"{self.latency_p95_s:.4f}"}


class PolicyServer:
    """Serves one loaded checkpoint to the robots added with :meth:`serve`.

    Callbacks (called from the inference thread, never under the server's lock):
    ``publish(robot, chunk)``, ``on_state(robot)`` when a robot's state changed, ``warn(key, text)``.
    """

    def __init__(self, policy: OctoPolicy, config: PolicyConfig, publish: Callable[[str, ActionChunk], None],
                 on_state: Callable[[str], None], warn: Callable[[str, str], None]):
        self.policy = policy
        self.config = config
        self._publish, self._on_state, self._warn = publish, on_state, warn
        self._cond = threading.Condition()
        self._slots: dict[str, RobotSlot] = {}
        self._changed: set[str] = set()  # robots whose state changed since callbacks last ran
        self.batch_sizes: Counter[int] = Counter()  # batch size -> how many sample_actions calls had it
        self._running = True
        self.checkpoint_hash = ""
        self._worker = threading.Thread(target=self._loop, name="policy-inference", daemon=True)

    # ------------------------------------------------------------------ robots
    def check_robot(self, robot: RobotConfig, name: str = "") -> tuple[Optional[str], tuple[str, ...], Mapping]:
        """(dataset key, action dimension names, statistics) if robot ``name``'s action space fits
        the checkpoint; ValueError naming the robot and the mismatch otherwise."""
        try:
            return self._check_robot(robot)
        except ValueError as err:
            raise ValueError(f"robot '{name}': {err}" if name else str(err)) from None

    def _check_robot(self, robot: RobotConfig) -> tuple[Optional[str], tuple[str, ...], Mapping]:
        key = robot.dataset_statistics_key or None
        if key is None and len(self.policy.dataset_keys) > 1:
            raise ValueError(f"checkpoint has statistics for several datasets {self.policy.dataset_keys}: "
                             "set 'dataset_statistics_key'")
        try:
            stats = select_statistics(self.policy.dataset_statistics, key)
        except KeyError as err:
            raise ValueError(f"dataset_statistics_key: {err.args[0]}") from None
        action_dim = _action_dim(stats["action"])
        names = robot.action_dimension_names or tuple(f"a{i}" for i in range(action_dim))
        if len(names) != action_dim:
            raise ValueError(f"action_dimension_names has {len(names)} names but the model's actions have "
                             f"{action_dim} dimensions")
        return key, tuple(names), stats

    def serve(self, name: str, robot: RobotConfig) -> str:
        """Start serving robot ``name`` (or change its settings, keeping its task and figures); a
        line describing its action space. ValueError naming a mismatch (nothing changes)."""
        key, names, stats = self.check_robot(robot, name)
        with self._cond:
            slot = self._slots.get(name)
            settings = dict(dataset_key=key, dimension_names=names, action_statistics=stats["action"],
                            proprio_statistics=stats.get("proprio"))
            if slot is None:
                self._slots[name] = RobotSlot(name, **settings, generator=torch.Generator().manual_seed(self.config.seed))
            else:
                self._slots[name] = replace(slot, **settings, pending=None)
            self._cond.notify_all()
        statistics = key or next(iter(self.policy.dataset_keys), "single dataset")
        return (f"{self.policy.action_horizon} x {len(names)} actions ({', '.join(names)}), "
                f"statistics '{statistics}'")

    def changes(self, values: Mapping[str, object], robot_config: Callable[..., RobotConfig]) -> dict:
        """Robot -> its :class:`RobotConfig` after setting the parameters ``values`` (None: it
        leaves): ``robots`` and the per-robot parameters of robots served. ``robot_config(name,
        **changed)`` reads a robot's parameters. ValueError names the first robot that does not fit."""
        served, changes = set(self.robots), {}
        for name, value in values.items():
            robot = robot_parameter(name)
            if name == "robots":
                check_robot_names(value)
                changes.update({leaving: None for leaving in served - set(value)})
                changes.update({joining: robot_config(joining) for joining in value if joining not in served})
            elif robot and robot[0] in served:
                value = value if isinstance(value, str) else tuple(v for v in value if v)  # [''] is ()
                changes[robot[0]] = robot_config(robot[0], **{robot[1]: value})
        for name, robot in changes.items():
            if robot is not None:
                self.check_robot(robot, name)
        return changes

    def leave(self, name: str) -> None:
        with self._cond:
            self._slots.pop(name, None)
            self._cond.notify_all()

    @property
    def robots(self) -> list[str]:
        with self._cond:
            return sorted(self._slots)

    # ------------------------------------------------------------------ tasks
    def goal_image_shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of goal images: nothing larger is decoded."""
        return goal_image_shape(self.policy, self.config.goal_image_input)

    def task(self, name: str) -> Task:
        with self._cond:
            return self._slots[name].task

    def instruct(self, name: str, text: str) -> Task:
        """Set robot ``name``'s instruction (its goal image stays); TaskError says why not."""
        text = validate_instruction(self.policy, text)
        return self._update_task(name, lambda task: Task(instruction=text, goals=task.goals))

    def set_goal(self, name: str, rgb: np.ndarray) -> Task:
        """Set robot ``name``'s goal image (its instruction stays); TaskError says why not."""
        rgb = validate_goal_image(self.policy, self.config.goal_image_input, rgb)
        return self._update_task(name, lambda task: Task(instruction=task.instruction,
                                                         goals={self.config.goal_image_input: rgb}))

    def clear_task(self, name: str) -> Task:
        return self._update_task(name, lambda task: NO_TASK)

    def set_task(self, name: str, instruction: str | None = None, goal: np.ndarray | None = None,
                 clear: bool = False) -> Task:
        """One change of robot ``name``'s task, however it arrives: cleared, a goal image (RGB) or
        an instruction; TaskError says why not."""
        if clear:
            return self.clear_task(name)
        return self.instruct(name, instruction) if goal is None else self.set_goal(name, goal)

    def _update_task(self, name: str, change: Callable[[Task], Task]) -> Task:
        with self._cond:
            slot = self._slots[name]
            slot.task = change(slot.task)
            if slot.task is NO_TASK:
                self._set_state(slot, RobotState.WAITING_FOR_TASK, "waiting for task")
            elif slot.state != RobotState.RUNNING:
                self._set_state(slot, RobotState.WAITING_FOR_OBSERVATION, "waiting for observation windows")
            self._cond.notify_all()
            task = slot.task
        self._notify()
        return task

    # ------------------------------------------------------------------ windows
    def put_window(self, name: str, window: ObservationWindow) -> None:
        """Hand robot ``name``'s newest window to the batcher (one not yet served is dropped);
        ValueError naming the mismatch when it does not fit the checkpoint (the robot is in ERROR)."""
        problem = window_layout_problem(self.policy, window)
        with self._cond:
            slot = self._slots.get(name)
            if slot is None:  # left while the window was on its way
                return
            if problem:
                self._set_state(slot, RobotState.ERROR, f"observation window refused: {problem}")
            else:
                if slot.pending is not None:
                    slot.windows_dropped += 1
                slot.pending = (time.perf_counter(), window)
                slot.last_window_at = slot.pending[0]
                self._cond.notify_all()
        if problem:
            self._notify()
            raise ValueError(f"does not fit the checkpoint: {problem}")

    # ------------------------------------------------------------------ status
    def statuses(self) -> list[RobotStatus]:
        with self._cond:
            return [RobotStatus(s.name, s.state, s.message, s.task, s.dataset_key or "", s.chunks_published,
                                s.windows_dropped, *s.latency.percentiles()) for s in sorted(self._slots.values(),
                                                                                            key=lambda s: s.name)]

    def status(self, name: str) -> RobotStatus | None:
        return next((s for s in self.statuses() if s.name == name), None)

    def diagnostics(self, own_name: str) -> list[tuple[str, int, str, dict]]:
        """(name, level, message, values) per robot, named ``R/policy`` (what the recorder in
        namespace R reads its evidence from), and the server's :meth:`summary` under ``own_name``
        (merged with the robot on the server's own names). Levels: diagnostic_msgs' 0 OK, 1 WARN, 2 ERROR."""
        summary, entries = self.summary(), {}
        for status in self.statuses():
            values = {**status.values(), "model_id": summary["model_id"], "checkpoint_hash": summary["checkpoint_hash"]}
            level = {RobotState.RUNNING: 0, RobotState.ERROR: 2}.get(status.state, 1)
            entries[f"{status.name}/policy" if status.name else own_name] = [level, status.message, values]
        worst = max((e[0] for e in entries.values()), default=1)
        own = entries.setdefault(own_name, [worst, f"serving {len(entries)} robots", {}])
        own[2] = {**own[2], **summary}
        return [(name, *entry) for name, entry in entries.items()]

    def summary(self) -> dict[str, object]:
        """The server's diagnostics values: the model, its checkpoint's content hash ('' until
        hashed; the evidence a recorder stores), the robots, each one's latency, the batch sizes
        formed (size:calls)."""
        statuses = self.statuses()
        with self._cond:
            batches = " ".join(f"{size}:{count}" for size, count in sorted(self.batch_sizes.items()))
        values = {"model_id": self.policy.model_id, "checkpoint_hash": self.checkpoint_hash,
                  "robots": ", ".join(s.name or "." for s in statuses), "batch_sizes": batches or "none"}
        for s in statuses:
            values.update({f"{s.name or '.'}.latency_p50_s": f"{s.latency_p50_s:.4f}",
                           f"{s.name or '.'}.latency_p95_s": f"{s.latency_p95_s:.4f}"})
        return values

    def _set_state(self, slot: RobotSlot, state: RobotState, message: str) -> None:
        """Under the lock; :meth:`_notify` runs the callbacks after it is released."""
        if state != slot.state:
            self._changed.add(slot.name)
        slot.state, slot.message = state, message

    def _notify(self) -> None:
        with self._cond:
            changed, self._changed = self._changed, set()
        for name in sorted(changed):
            self._on_state(name)

    # ------------------------------------------------------------------ inference
    def start(self) -> None:
        self._worker.start()
        # hashing a GB-sized checkpoint takes seconds: off the start-up path
        threading.Thread(target=self._hash_checkpoint, name="policy-hash", daemon=True).start()

    def _hash_checkpoint(self) -> None:
        try:
            self.checkpoint_hash = checkpoint_content_hash(self.config.checkpoint)
        except OSError as err:
            self._warn("checkpoint_hash", f"cannot hash the checkpoint {self.config.checkpoint} for the episode "
                       f"evidence: {err}")

    def close(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout=10)

    def _loop(self) -> None:
        while True:
            rows = self._gather()
            self._notify()
            if rows is None:
                return
            groups: dict[tuple, list] = {}
            for slot, received, window, task in rows:
                try:
                    row = self._batch_row(slot, window, task)
                except Exception as err:  # noqa: BLE001 - one robot's bad input must not stop the others
                    self._failed([slot], err)
                    continue
                groups.setdefault(batch_key(row), []).append((slot, received, window, task, row))
            for group in groups.values():
                self._run(group)
            self._notify()

    def _gather(self) -> list[tuple[RobotSlot, float, ObservationWindow, Task]] | None:
        """The windows ready together: waits for a first one, then up to the batching window for
        the other robots with a task; None when closed."""
        with self._cond:
            while True:
                if not self._running:
                    return None
                now = time.perf_counter()
                for slot in self._slots.values():
                    if slot.task is NO_TASK and slot.pending is not None:
                        slot.pending = None  # no task: no actions
                        self._set_state(slot, RobotState.WAITING_FOR_TASK, "waiting for task")
                    elif (slot.task is not NO_TASK and slot.state == RobotState.RUNNING
                          and now - slot.last_window_at > IDLE_AFTER_S):
                        self._set_state(slot, RobotState.WAITING_FOR_OBSERVATION, "waiting for observation windows")
                if any(s.pending is not None for s in self._slots.values()):
                    break
                self._cond.wait(timeout=IDLE_AFTER_S / 2)
            deadline = time.perf_counter() + self.config.batching_window_s
            while self._running and time.perf_counter() < deadline:
                if all(s.pending is not None for s in self._slots.values() if s.task is not NO_TASK):
                    break
                self._cond.wait(timeout=deadline - time.perf_counter())
            rows = []
            for slot in sorted(self._slots.values(), key=lambda s: s.name):  # a steady row order: stem cache hits
                if slot.pending is not None and slot.task is not NO_TASK:
                    rows.append((slot, *slot.pending, slot.task))
                    slot.pending = None
            return rows

    def _batch_row(self, slot: RobotSlot, window: ObservationWindow, task: Task) -> BatchRow:
        if slot.task_tensors is None or slot.task_tensors[0] is not task:
            tensors = self.policy.create_tasks(texts=[task.instruction] if task.instruction else None,
                                               goals={k: v[None] for k, v in task.goals.items()} if task.goals else None)
            slot.task_tensors = (task, tensors)
        # the newest steps of the window the model was trained with: a longer window would put the
        # newest frame at a timestep position the model never learned (max_horizon is only a bound)
        observations = model_batch(window, self.policy.observation_keys, self.policy.window_size, slot.proprio_statistics)
        return BatchRow(observations, slot.task_tensors[1], slot.action_statistics, slot.generator)

    def _run(self, group: list) -> None:
        slots = [g[0] for g in group]
        try:
            actions = sample_batch(self.policy, [g[4] for g in group])
        except Exception as err:  # noqa: BLE001 - the worker must outlive any one bad inference
            self._failed(slots, err)
            return
        done = time.perf_counter()
        with self._cond:
            self.batch_sizes[len(group)] += 1
        for (slot, received, window, task, _), (normalized, unnormalized) in zip(group, actions):
            with self._cond:
                if self._slots.get(slot.name) is not slot or slot.task is not task:
                    continue  # left, or its task was cleared or replaced during inference: not for this task
                latency = done - received
                slot.latency.add(latency)
                chunk = ActionChunk(stamp_ns=window.stamp_ns, sequence=slot.chunks_published, actions=unnormalized,
                                    normalized=normalized, dimension_names=slot.dimension_names,
                                    step_period_s=self.config.step_period_s, model_id=self.policy.model_id,
                                    task=task.describe(), inference_latency_s=latency)
                slot.chunks_published += 1
                self._set_state(slot, RobotState.RUNNING, f"running: {task.describe()}")
            self._publish(slot.name, chunk)

    def _failed(self, slots: list[RobotSlot], err: Exception) -> None:
        text = f"inference failed: {type(err).__name__}: {err}"
        with self._cond:
            for slot in slots:
                self._set_state(slot, RobotState.ERROR, text)
        self._warn(f"inference:{type(err).__name__}", text + "; no chunk published")
