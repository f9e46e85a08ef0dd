"""Limits as sent on the wire (issue #12 item 7): the simulated ALOHA arm stops at its URDF joint
limits as the real one does; every bimanual command satisfies every limit after conversion to the
message's float32; the UR5 speed cap holds per elapsed time, not per tick."""
import numpy as np
import pytest

from octo_ros.control.chunking import ChunkExecutionConfig, ExecutionMode
from octo_ros.control.kinematics import rotation_log
from octo_ros.robots.bimanual.adapter import ACTION_NAMES, BimanualAdapter, BimanualConfig
from octo_ros.robots.interbotix.kinematics import VX300S
from octo_ros.robots.ur5.adapter import URAdapter, URConfig, pose_to_matrix

LOWER, UPPER = np.array(VX300S.limits.lower), np.array(VX300S.limits.upper)
START = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0])


def test_simulated_aloha_arm_stops_at_its_joint_limits():
    pytest.importorskip("gym_aloha")
    from octo_ros.robots.bimanual.sim import AlohaSim, AlohaSimConfig

    sim = AlohaSim(AlohaSimConfig())
    worst = 0.0
    for goal in (UPPER, LOWER):  # every joint driven to a limit at full speed, colliding on the way
        for arm in ("left", "right"):
            sim.set_arm_goal(arm, goal)
        for _ in range(150):
            sim.step()
            for arm in ("left", "right"):
                q = np.array(sim.joint_states(arm).position[:6])
                worst = max(worst, float(np.max(np.maximum(LOWER - q, q - UPPER))))
    assert worst <= 1e-9, f"a simulated joint went {worst:.3f} rad past its limit"
    assert not sim.violations


def _bimanual():
    a = BimanualAdapter(BimanualConfig())
    a.set_dry_run(False)
    return a


@pytest.mark.parametrize("joint", range(6))
@pytest.mark.parametrize("side", ["lower", "upper"])
def test_bimanual_commands_at_a_limit_stay_inside_it_as_float32(joint, side):
    a = _bimanual()
    limit = (LOWER if side == "lower" else UPPER)[joint]
    q = START.copy()
    q[joint] = limit - np.sign(limit) * 0.01  # next to the limit
    for arm in ("left", "right"):
        a.update_joint_state(arm, q, 1.0, 0.0, now=0.0)
    action = np.concatenate([q, [1.0], q, [1.0]])
    action[joint] = action[joint + 7] = limit * (1 + 1e-12)  # the policy asks for the limit (and a hair beyond)
    a.add_chunk(np.tile(action, (50, 1)), 0.0, 0.0, names=ACTION_NAMES)
    sent = [o.target for o in (a.step(k * 0.02) for k in range(30)) if o.send]
    assert sent
    wire = np.float32(np.array(sent)).astype(float)  # JointGroupCommand.cmd is float32[]
    assert np.all(wire >= a.lower) and np.all(wire <= a.upper), "a sent command is outside the limits as float32"
    assert np.isclose(wire[-1][joint], limit, atol=1e-6)  # it did go to the limit


def test_bimanual_re_anchored_beyond_a_limit_never_sends_outside_it():
    a = _bimanual()
    q = START.copy()
    q[3] = -3.378  # forearm_roll measured beyond -pi (the reported case)
    for arm in ("left", "right"):
        a.update_joint_state(arm, q, 1.0, 0.0, now=0.0)
    a.add_chunk(np.tile(np.concatenate([q, [1.0], q, [1.0]]), (50, 1)), 0.0, 0.0, names=ACTION_NAMES)
    sent = [o.target for o in (a.step(k * 0.02) for k in range(10)) if o.send]
    assert sent
    wire = np.float32(np.array(sent)).astype(float)
    assert np.all(wire >= a.lower) and np.all(wire <= a.upper)


def test_ur5_speed_cap_holds_per_elapsed_time_when_ticks_bunch():
    config = URConfig((0.25, -0.3, 0.05), (0.6, 0.3, 0.45),
                      execution=ChunkExecutionConfig(mode=ExecutionMode.RECEDING_HORIZON, exec_horizon=4))
    a = URAdapter(config)
    pose0 = [0.4, -0.1, 0.3, 0.0, np.pi, 0.0]
    a.update_tcp_pose(pose0, 0.0, now=0.0)
    a.set_dry_run(False)
    a.add_chunk(np.tile([0.05, 0, 0, 0, 0, 0.2, 1.0], (4, 1)), 0.0, 0.0)
    # a loaded machine: a late tick, then the timer catches up with ticks back to back
    times, t = [], 0.0
    for k in range(60):
        t += 0.0296 if k % 4 == 0 else 0.0001
        times.append(t)
    out = []
    for t in times:
        a.update_tcp_pose(pose0, t, now=t)  # (the pose only feeds the watchdog: no tracking here)
        o = a.step(t)
        if o.send:
            out.append((t, pose_to_matrix(o.target)))
    assert len(out) > 20
    (t_prev, T_prev) = (0.0, pose_to_matrix(pose0))
    for t, T in out:
        dt = t - t_prev
        assert np.linalg.norm(T[:3, 3] - T_prev[:3, 3]) <= config.max_linear_speed_m_s * dt + 1e-9, (t, dt)
        rot = np.linalg.norm(rotation_log(T[:3, :3] @ T_prev[:3, :3].T))
        assert rot <= config.max_angular_speed_rad_s * dt + 1e-9
        t_prev, T_prev = t, T
