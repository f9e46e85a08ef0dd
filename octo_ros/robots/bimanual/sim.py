"""Simulated bimanual ALOHA: gym-aloha's MuJoCo model of two ViperX 300 S followers (no rclpy).

The model and meshes come from the ``gym_aloha`` package (``gym_aloha/assets``); the physics is
stepped with the ``mujoco`` bindings directly (no dm_control/gym wrapper), so the simulation can
be driven the way the real followers are: per-arm xs_sdk commands (group ``arm``: 6 joint
positions in rad; single ``gripper``: the gripper *joint* angle in rad), or gym-aloha's 14-D
action (6 joints + normalized gripper per arm). It reports what xs_sdk publishes per follower
(joints, ``gripper`` in rad, ``left_finger`` / ``right_finger`` in m) and the ALOHA observation
layout (14-D qpos / qvel with normalized gripper position).

Gripper: the MuJoCo model actuates the finger slide joints. A gripper joint angle is mapped to a
finger position the way ALOHA relates its two gripper scales: normalize with the joint open/close
constants, unnormalize with the position open/close constants (defaults: gym-aloha's puppet
constants). Arm set points move toward their goals no faster than ``max_joint_speed`` (the
Dynamixels' velocity limit when the follower's profile velocity is 0 = unlimited) and are clipped
to the ViperX 300 S joint limits; out-of-range or malformed commands are recorded in
``violations``. The arm joints themselves never pass those limits (hard end stops after every
physics step, as the servos' position limits on the real arm).

Rendering (``AlohaRenderer``) is separate and works from a state snapshot, so a node can render
in its own thread at the policy rate while physics runs at the control rate. MuJoCo renders
headless through EGL here; ``MUJOCO_GL`` defaults to ``egl`` when unset.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco  # noqa: E402  (MUJOCO_GL must be set before the import)

from octo_ros.robots.interbotix.driver_standin import JointStateSample  # noqa: E402
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS, VX300S  # noqa: E402
from octo_ros.sim.tasks import EpisodeRule, TaskStatus  # noqa: E402

ARMS = ("left", "right")
JOINT_STATE_NAMES = (*ARM_JOINTS, "gripper", "left_finger", "right_finger")

# gym-aloha (ACT sim) puppet constants: left_finger position (m) and gripper joint (rad).
PUPPET_GRIPPER_POSITION_OPEN = 0.05800
PUPPET_GRIPPER_POSITION_CLOSE = 0.01844
PUPPET_GRIPPER_JOINT_OPEN = 1.4910
PUPPET_GRIPPER_JOINT_CLOSE = -0.6213
# gym-aloha START_ARM_POSE (per arm; fingers at ±0.02239 m)
START_ARM_POSE = (0.0, -0.96, 1.16, 0.0, -0.3, 0.0)
START_FINGER = 0.02239

TASK_FILES = {
    "transfer_cube": "bimanual_viperx_transfer_cube.xml",
    "insertion": "bimanual_viperx_insertion.xml",
}


@dataclass(frozen=True)
class AlohaTask:
    """A task on gym-aloha's transfer-cube scene, judged by gym-aloha's own staged reward
    (``TransferCubeTask.get_reward``: 1 right gripper touches the cube, 2 it lifts it off the table,
    3 the left gripper touches it, 4 the left one holds it off the table alone)."""

    instruction: str
    success_reward: int
    rule: EpisodeRule


TASKS = {
    "lift_cube": AlohaTask("pick up the red cube with the right arm", 2, EpisodeRule(timeout_s=12.0, hold_s=0.5)),
}
DEFAULT_TASK = "lift_cube"
# gym-aloha sample_box_pose: the cube's centre is drawn from this box (m), upright.
CUBE_LOW = (0.0, 0.4, 0.05)
CUBE_HIGH = (0.2, 0.6, 0.05)


def sample_cube_pose(seed: int) -> np.ndarray:
    """Episode ``seed``'s cube pose [x, y, z, qw, qx, qy, qz] (gym-aloha's ranges)."""
    position = np.random.default_rng(seed).uniform(CUBE_LOW, CUBE_HIGH)
    return np.concatenate([position, [1.0, 0.0, 0.0, 0.0]])


CAMERAS = ("top", "angle", "left_wrist", "right_wrist", "left_pillar", "right_pillar", "front_close")


def gym_aloha_assets() -> Path:
    spec = importlib.util.find_spec("gym_aloha")
    if spec is None or spec.origin is None:
        raise ImportError("gym-aloha is not installed (pip install gym-aloha==0.1.5)")
    return Path(spec.origin).parent / "assets"


@dataclass
class AlohaSimConfig:
    task: str = "transfer_cube"
    control_rate_hz: float = 50.0  # ALOHA's DT = 0.02 s
    max_joint_speed: float = math.pi  # rad/s for arm set points; 0 = jump to the goal
    gripper_joint_open: float = PUPPET_GRIPPER_JOINT_OPEN
    gripper_joint_close: float = PUPPET_GRIPPER_JOINT_CLOSE
    gripper_position_open: float = PUPPET_GRIPPER_POSITION_OPEN
    gripper_position_close: float = PUPPET_GRIPPER_POSITION_CLOSE
    initial_arm_pose: tuple[float, ...] = START_ARM_POSE
    initial_finger: float = START_FINGER

    def __post_init__(self):
        if self.task not in TASK_FILES:
            raise ValueError(f"unknown task {self.task!r}; known: {sorted(TASK_FILES)}")
        if not self.control_rate_hz > 0:
            raise ValueError("control_rate_hz must be > 0")
        if self.gripper_joint_open == self.gripper_joint_close or self.gripper_position_open == self.gripper_position_close:
            raise ValueError("gripper open and close constants must differ")
        if len(self.initial_arm_pose) != 6:
            raise ValueError("initial_arm_pose needs 6 joint positions")


def load_model(task: str = "transfer_cube") -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(str(gym_aloha_assets() / TASK_FILES[task]))


class AlohaSim:
    """Two followers in gym-aloha's MuJoCo scene. Advance with ``step()`` or ``advance_to(t)``."""

    def __init__(self, config: AlohaSimConfig | None = None, model: mujoco.MjModel | None = None):
        self.config = config or AlohaSimConfig()
        self.model = model or load_model(self.config.task)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.n_substeps = max(1, int(round(1.0 / (self.config.control_rate_hz * m.opt.timestep))))
        self.control_dt = self.n_substeps * m.opt.timestep
        self._qpos_adr, self._qvel_adr, self._act = {}, {}, {}
        for arm in ARMS:
            names = [f"vx300s_{arm}/{j}" for j in (*ARM_JOINTS, "left_finger", "right_finger")]
            jids = [m.joint(n).id for n in names]
            self._qpos_adr[arm] = np.array([m.jnt_qposadr[j] for j in jids])
            self._qvel_adr[arm] = np.array([m.jnt_dofadr[j] for j in jids])
            acts = []
            for jid in jids:
                idx = np.nonzero((m.actuator_trntype == mujoco.mjtTrn.mjTRN_JOINT) & (m.actuator_trnid[:, 0] == jid))[0]
                acts.append(int(idx[0]))
            self._act[arm] = np.array(acts)
        # Arm limits: the ViperX 300 S URDF limits, what the real followers and the adapter use (the
        # MuJoCo model's joint ranges round them to 5 decimals, e.g. 3.14158 for pi).
        self.lower, self.upper = np.array(VX300S.limits.lower), np.array(VX300S.limits.upper)
        self._arm_qpos = np.concatenate([self._qpos_adr[arm][:6] for arm in ARMS])  # both arms' joints, for the end stops
        self._arm_qvel = np.concatenate([self._qvel_adr[arm][:6] for arm in ARMS])
        self._arm_lower, self._arm_upper = np.tile(self.lower, len(ARMS)), np.tile(self.upper, len(ARMS))
        fid = m.joint("vx300s_left/left_finger").id
        self.finger_lower, self.finger_upper = (float(v) for v in m.jnt_range[fid])
        self._env_qpos0: np.ndarray | None = None
        self.violations: list[str] = []
        self.task: tuple[str, int] | None = None  # (name, seed)
        self.reset()

    # state --------------------------------------------------------------------------------
    def reset(self, env_qpos=None) -> None:
        """Both arms at the start pose, set points there too, objects at their keyframe pose
        (or ``env_qpos``: the free joints' qpos after the 16 arm entries, e.g. a cube pose
        [x, y, z, qw, qx, qy, qz]). Time restarts at 0."""
        m, d = self.model, self.data
        if m.nkey > 0:
            mujoco.mj_resetDataKeyframe(m, d, 0)
        else:
            mujoco.mj_resetData(m, d)
        for arm in ARMS:
            q = np.clip(np.asarray(self.config.initial_arm_pose, float), self.lower, self.upper)
            f = float(np.clip(self.config.initial_finger, self.finger_lower, self.finger_upper))
            d.qpos[self._qpos_adr[arm]] = [*q, f, -f]
            d.ctrl[self._act[arm]] = [*q, f, -f]
        if env_qpos is not None:
            env = np.asarray(env_qpos, float)
            if env.shape != (m.nq - 16,):
                raise ValueError(f"env_qpos needs {m.nq - 16} values, got {env.shape}")
            d.qpos[16:] = env
        d.qvel[:] = 0.0
        d.time = 0.0
        self._goal = {arm: d.ctrl[self._act[arm]][:6].copy() for arm in ARMS}
        self._finger_goal = {arm: float(d.ctrl[self._act[arm]][6]) for arm in ARMS}
        mujoco.mj_forward(m, d)

    @property
    def time(self) -> float:
        return float(self.data.time)

    # task -----------------------------------------------------------------------------------
    def set_task(self, task: str, seed: int) -> np.ndarray:
        """Reset to episode ``seed`` of ``task`` (arms at the start pose, the cube at its sampled
        pose); returns the cube pose."""
        if task not in TASKS:
            raise ValueError(f"unknown ALOHA task {task!r}; known: {sorted(TASKS)}")
        if self.config.task != "transfer_cube":
            raise ValueError(f"task {task!r} needs the transfer_cube scene, this sim has {self.config.task!r}")
        pose = sample_cube_pose(seed)
        self.reset(env_qpos=pose)
        self.task = (task, int(seed))
        return pose

    def cube_pose(self) -> np.ndarray:
        return self.data.qpos[16:23].copy()

    def transfer_cube_reward(self) -> int:
        """gym-aloha's TransferCubeTask reward from the current contacts (pairs in either order)."""
        m, d = self.model, self.data
        pairs = set()
        for i in range(d.ncon):
            a, b = m.geom(d.contact[i].geom1).name, m.geom(d.contact[i].geom2).name
            pairs.update({(a, b), (b, a)})
        left = ("red_box", "vx300s_left/10_left_gripper_finger") in pairs
        right = ("red_box", "vx300s_right/10_right_gripper_finger") in pairs
        table = ("red_box", "table") in pairs
        reward = 0
        if right:
            reward = 1
        if right and not table:
            reward = 2
        if left:
            reward = 3
        if left and not table:
            reward = 4
        return reward

    def task_status(self, time: float | None = None) -> TaskStatus | None:
        """The task's check on the current state (None without a task); ``time`` defaults to sim time."""
        if self.task is None:
            return None
        name, seed = self.task
        spec = TASKS[name]
        reward = self.transfer_cube_reward()
        return TaskStatus(name, seed, spec.instruction, reward >= spec.success_reward, float(reward),
                          self.time if time is None else time,
                          {"cube": tuple(float(v) for v in self.cube_pose()), "qpos14": tuple(float(v) for v in self.qpos14())})

    def snapshot(self) -> np.ndarray:
        """A copy of the full qpos (what ``AlohaRenderer.render`` needs)."""
        return self.data.qpos.copy()

    # commands -------------------------------------------------------------------------------
    def set_arm_goal(self, arm: str, q) -> bool:
        q = np.asarray(q, float)
        if arm not in ARMS:
            self.violations.append(f"unknown arm {arm!r}")
            return False
        if q.shape != (6,) or not np.all(np.isfinite(q)):
            self.violations.append(f"{arm}: arm goal must be 6 finite values, got {q.tolist()}")
            return False
        out = (q < self.lower - 1e-9) | (q > self.upper + 1e-9)
        for i in np.nonzero(out)[0]:
            self.violations.append(f"{arm} {ARM_JOINTS[i]}: goal {q[i]:.4f} outside [{self.lower[i]:.4f}, {self.upper[i]:.4f}]")
        self._goal[arm] = np.clip(q, self.lower, self.upper)
        return True

    def finger_from_gripper_joint(self, angle: float) -> float:
        c = self.config
        n = (angle - c.gripper_joint_close) / (c.gripper_joint_open - c.gripper_joint_close)
        return n * (c.gripper_position_open - c.gripper_position_close) + c.gripper_position_close

    def gripper_joint_from_finger(self, finger: float) -> float:
        c = self.config
        n = (finger - c.gripper_position_close) / (c.gripper_position_open - c.gripper_position_close)
        return n * (c.gripper_joint_open - c.gripper_joint_close) + c.gripper_joint_close

    def set_finger_goal(self, arm: str, finger: float) -> bool:
        if arm not in ARMS or not math.isfinite(finger):
            self.violations.append(f"{arm}: bad finger goal {finger!r}")
            return False
        # The fingers stop at the model's range (as real fingers stop on their end stops); ALOHA's
        # close constant lies a little beyond it, so this is not a violation.
        self._finger_goal[arm] = float(np.clip(finger, self.finger_lower, self.finger_upper))
        return True

    def command_joint_group(self, arm: str, group: str, cmd) -> bool:
        """xs_sdk ``commands/joint_group`` for one follower: ``arm`` (6 rad) or ``all`` (+ gripper rad)."""
        cmd = [float(c) for c in cmd]
        if group == "arm":
            if len(cmd) != 6:
                self.violations.append(f"{arm}: group 'arm' expects 6 values, got {len(cmd)}")
                return False
            return self.set_arm_goal(arm, cmd)
        if group == "all":
            if len(cmd) != 7:
                self.violations.append(f"{arm}: group 'all' expects 7 values, got {len(cmd)}")
                return False
            return self.set_arm_goal(arm, cmd[:6]) and self.command_joint_single(arm, "gripper", cmd[6])
        self.violations.append(f"{arm}: unknown group {group!r}")
        return False

    def command_joint_single(self, arm: str, name: str, cmd: float) -> bool:
        """xs_sdk ``commands/joint_single``: ``gripper`` (joint angle, rad) or one arm joint (rad)."""
        cmd = float(cmd)
        if not math.isfinite(cmd):
            self.violations.append(f"{arm}: non-finite command for {name!r}")
            return False
        if name == "gripper":
            return self.set_finger_goal(arm, self.finger_from_gripper_joint(cmd))
        if name in ARM_JOINTS and arm in ARMS:
            q = self._goal[arm].copy()
            q[ARM_JOINTS.index(name)] = cmd
            return self.set_arm_goal(arm, q)
        self.violations.append(f"{arm}: unknown joint {name!r}")
        return False

    def set_action14(self, action) -> bool:
        """gym-aloha / ACT action: [left 6 joints, left gripper normalized (1 = open), right 6, right gripper]."""
        a = np.asarray(action, float)
        if a.shape != (14,) or not np.all(np.isfinite(a)):
            self.violations.append(f"action must be 14 finite values, got {a.shape}")
            return False
        c = self.config
        ok = True
        for arm, off in zip(ARMS, (0, 7)):
            ok &= self.set_arm_goal(arm, a[off:off + 6])
            finger = a[off + 6] * (c.gripper_position_open - c.gripper_position_close) + c.gripper_position_close
            ok &= self.set_finger_goal(arm, float(finger))
        return bool(ok)

    # simulation -----------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """Advance ``n`` control periods (``n_substeps`` physics steps each)."""
        m, d = self.model, self.data
        vmax = self.config.max_joint_speed
        dq = vmax * m.opt.timestep if vmax > 0 else math.inf
        for _ in range(n * self.n_substeps):
            for arm in ARMS:
                act = self._act[arm]
                sp = d.ctrl[act[:6]]
                d.ctrl[act[:6]] = sp + np.clip(self._goal[arm] - sp, -dq, dq)
                f = self._finger_goal[arm]
                d.ctrl[act[6]], d.ctrl[act[7]] = f, -f
            mujoco.mj_step(m, d)
            self._enforce_joint_limits()

    def _enforce_joint_limits(self) -> None:
        """The arm joints stop at the URDF limits, as the real followers do (the Dynamixels' position
        limits): MuJoCo's soft joint limits let a driven or colliding arm pass them by up to ~1.7 rad."""
        d = self.data
        q = d.qpos[self._arm_qpos]
        below, above = q < self._arm_lower, q > self._arm_upper
        if below.any() or above.any():
            d.qpos[self._arm_qpos] = np.clip(q, self._arm_lower, self._arm_upper)
            v = d.qvel[self._arm_qvel]
            d.qvel[self._arm_qvel] = np.where((below & (v < 0)) | (above & (v > 0)), 0.0, v)  # the end stop

    def advance_to(self, t: float) -> int:
        """Step whole control periods until sim time reaches ``t``; returns how many were run."""
        n = int(math.floor((t - self.time) / self.control_dt + 1e-9))
        if n > 0:
            self.step(n)
        return max(n, 0)

    # observations -----------------------------------------------------------------------------
    def joint_states(self, arm: str) -> JointStateSample:
        """What ``/<follower>/joint_states`` carries: 6 joints, gripper (rad), fingers (m)."""
        d = self.data
        qp = d.qpos[self._qpos_adr[arm]]
        qv = d.qvel[self._qvel_adr[arm]]
        finger, dfinger = float(qp[6]), float(qv[6])
        c = self.config
        scale = (c.gripper_joint_open - c.gripper_joint_close) / (c.gripper_position_open - c.gripper_position_close)
        pos = (*qp[:6].tolist(), self.gripper_joint_from_finger(finger), finger, float(qp[7]))
        vel = (*qv[:6].tolist(), dfinger * scale, dfinger, float(qv[7]))
        return JointStateSample(self.time, JOINT_STATE_NAMES, pos, vel, (0.0,) * len(JOINT_STATE_NAMES))

    def qpos14(self) -> np.ndarray:
        """ALOHA observation qpos: per arm 6 joints + normalized finger position (0 = closed, 1 = open)."""
        c = self.config
        out = []
        for arm in ARMS:
            qp = self.data.qpos[self._qpos_adr[arm]]
            out += [*qp[:6], (qp[6] - c.gripper_position_close) / (c.gripper_position_open - c.gripper_position_close)]
        return np.array(out)

    def qvel14(self) -> np.ndarray:
        c = self.config
        out = []
        for arm in ARMS:
            qv = self.data.qvel[self._qvel_adr[arm]]
            out += [*qv[:6], qv[6] / (c.gripper_position_open - c.gripper_position_close)]
        return np.array(out)

    def arm_goal(self, arm: str) -> np.ndarray:
        return self._goal[arm].copy()


class AlohaRenderer:
    """Offscreen MuJoCo renderer for named cameras, from qpos snapshots. Create and use it in
    one thread (the GL context belongs to the thread that made it)."""

    QUALITY = {"fast": (1024, 0), "model": None}  # (shadow map size, MSAA samples); None = as gym-aloha

    def __init__(self, model: mujoco.MjModel, width: int = 640, height: int = 480, quality: str = "fast"):
        """``quality``: ``fast`` (1024² shadow map, no multisampling; several times faster on a CPU)
        or ``model`` (gym-aloha's own 4096² shadows and 4× multisampling, as in its datasets)."""
        if quality not in self.QUALITY:
            raise ValueError(f"quality must be one of {sorted(self.QUALITY)}")
        if self.QUALITY[quality] is not None:
            model.vis.quality.shadowsize, model.vis.quality.offsamples = self.QUALITY[quality]
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
            model.vis.global_.offheight = max(height, model.vis.global_.offheight)
        self.model = model
        self.data = mujoco.MjData(model)
        self.width, self.height = width, height
        self._renderer = mujoco.Renderer(model, height=height, width=width)

    def cameras(self) -> tuple[str, ...]:
        return tuple(self.model.camera(i).name for i in range(self.model.ncam))

    def render(self, qpos: np.ndarray, camera: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of the state ``qpos`` seen from camera ``camera``."""
        if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            raise KeyError(f"no camera {camera!r}; the model has {self.cameras()}")
        self.data.qpos[:] = qpos
        mujoco.mj_forward(self.model, self.data)
        self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
