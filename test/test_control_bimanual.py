import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from octo_ros.control.chunking import ChunkExecutionConfig, ExecutionMode
from octo_ros.control.safety import ControlStatus, SafetyConfig
from octo_ros.robots.bimanual.adapter import (
    ALOHA2_FOLLOWER_GRIPPER,
    ALOHA_ORIGINAL_PUPPET_GRIPPER,
    ArmSideConfig,
    BimanualAdapter,
    BimanualConfig,
)
from octo_ros.robots.interbotix.driver_standin import InterbotixSimConfig, InterbotixSimDriver

START = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0])  # ALOHA START_ARM_POSE
DT = 0.02


def make(armed=True, **kw):
    a = BimanualAdapter(BimanualConfig(**kw))
    for side in ("left", "right"):
        a.update_joint_state(side, START, 1.0, 0.0)
    if armed:
        a.set_dry_run(False)
    return a


def test_split_and_gripper_unnormalization_per_arm():
    a = make(right=ArmSideConfig("follower_right", *ALOHA_ORIGINAL_PUPPET_GRIPPER))
    action = np.concatenate([START, [1.0], START, [0.0]])
    a.add_chunk(np.tile(action, (50, 1)), 0.0, 0.0)
    out = None
    for k in range(100):  # grippers rate-limited at π rad/s
        t = k * DT
        for side in ("left", "right"):
            a.update_joint_state(side, START, 1.0, t)
        out = a.step(t)
    left, right = a.arm_commands(out)
    assert (left.namespace, right.namespace) == ("follower_left", "follower_right")
    np.testing.assert_allclose(left.arm, START)
    # ALOHA 2 vs original constants (the float32 just inside them: what the message can carry)
    assert left.gripper == pytest.approx(1.6214, abs=1e-6) and right.gripper == pytest.approx(-0.6213, abs=1e-6)
    assert any("follower_left" in line and "OPEN" in line for line in a.describe())


def test_interpolates_when_policy_is_slower_than_control():
    cfg = ChunkExecutionConfig(step_period_s=0.1, mode=ExecutionMode.RECEDING_HORIZON, exec_horizon=5)
    a = make(execution=cfg)
    target = START + np.array([0.1, 0, 0, 0, 0, 0])
    a.add_chunk(np.tile(np.concatenate([target, [1.0], START, [1.0]]), (5, 1)), 0.0, 0.0)
    xs = []
    for k in range(5):
        a.update_joint_state("left", START, 1.0, k * DT)
        a.update_joint_state("right", START, 1.0, k * DT)
        xs.append(a.step(k * DT).target[0])
    np.testing.assert_allclose(xs, [0.02, 0.04, 0.06, 0.08, 0.1], atol=1e-12)


def test_missing_arm_state_holds():
    a = BimanualAdapter(BimanualConfig())
    a.update_joint_state("left", START, 1.0, 0.0)
    assert a.step(0.0).status is ControlStatus.HOLD


def test_streams_into_simulated_followers_without_violations():
    rng = np.random.default_rng(1)
    sims = {s: InterbotixSimDriver(InterbotixSimConfig(arm="vx300s", arm_profile_type="velocity", arm_profile_velocity=0,
                                                       gripper_mode="position", gripper_joint_range=(0.6197, 1.6214)),
                                   initial_q=START) for s in ("left", "right")}
    a = make()
    t = 0.0
    for k in range(150):
        if k % 25 == 0:
            noise = rng.normal(0, 0.2, (50, 14))
            a.add_chunk(np.tile(np.concatenate([START, [0.5], START, [0.5]]), (50, 1)) + noise, t - 0.03, t)
        for side, sim in sims.items():
            sim.update(t)
            js = sim.joint_states()
            a.update_joint_state(side, js.position[:6], js.position[6], js.stamp)
        out = a.step(t)
        if out.send:
            for cmd, sim in zip(a.arm_commands(out), sims.values()):
                sim.command_joint_group("arm", list(cmd.arm))
                sim.command_joint_single("gripper", cmd.gripper)
        t = round(t + DT, 9)
    assert all(sim.violations == [] for sim in sims.values())


def tick(a, t, chunk=None, left=START, right=START, grippers=(1.0, 1.0)):
    if chunk is not None:
        a.add_chunk(chunk, t, t)
    a.update_joint_state("left", left, grippers[0], t, now=t)
    a.update_joint_state("right", right, grippers[1], t, now=t)
    return a.step(t)


def pose_chunk(gripper: float, left=START, right=START):
    return np.tile(np.concatenate([left, [gripper], right, [gripper]]), (50, 1))


def test_rate_limit_is_not_defeated_by_joint_limit_clipping():
    # the measured grippers are 0.20 rad past their close constant (0.6197); the policy keeps them closed
    squeezed = ALOHA2_FOLLOWER_GRIPPER[1] - 0.2
    a = BimanualAdapter(BimanualConfig())
    for side in ("left", "right"):
        a.update_joint_state(side, START, squeezed, 0.0, now=0.0)
    a.set_dry_run(False)
    prev = np.concatenate([START, [squeezed], START, [squeezed]])
    for k in range(8):
        o = tick(a, k * DT, pose_chunk(0.0) if k == 0 else None, grippers=(squeezed, squeezed))
        assert o.status is ControlStatus.MOVE and o.send
        # every command inside the limits; from a state outside them no further than the limit itself
        assert a.limits.within_position(np.float32(o.target), tol=0.0)
        assert np.all(np.abs(o.target - a.limits.clip_position(prev)[0]) <= a.velocity * DT + 1e-12), o.target - prev
        prev = o.target
    assert o.target[6] == o.target[13] == np.float32(ALOHA2_FOLLOWER_GRIPPER[1])  # the close constant


MOVED = START + np.array([0.8, 0.3, -0.3, 0.0, 0.2, 0.0])  # within the vx300s limits


@pytest.mark.parametrize("ticks_during_outage", [True, False])
def test_state_outage_with_arm_moved_reanchors_to_measured(ticks_during_outage):
    a = make()
    chunk = pose_chunk(1.0)
    for k in range(3):
        assert tick(a, k * DT, chunk if k == 0 else None).status is ControlStatus.MOVE
    if ticks_during_outage:  # 1 s without joint states; chunks keep coming
        for t in (0.3, 0.6, 0.9):
            a.add_chunk(chunk, t, t)
            assert "state stale" in a.step(t).reason
    measured = np.concatenate([MOVED, [1.0], START, [1.0]])
    for k in range(3):
        t = 1.0 + k * DT
        o = tick(a, t, chunk if k == 0 else None, left=measured[:6], grippers=(measured[6], measured[13]))
        assert o.status is ControlStatus.MOVE and o.send
        assert np.all(np.abs(o.target - measured) <= a.velocity * DT + 1e-12), "commanded far from the measured arm"
        measured = o.target  # the arms follow what is sent


def test_tracking_error_holds_on_arm_joints_not_on_grippers():
    a = make()
    open_rad = ALOHA2_FOLLOWER_GRIPPER[0]
    # grippers commanded closed but held open by an object: 1 rad apart for good, no hold
    for k in range(30):
        o = tick(a, k * DT, pose_chunk(0.0) if k % 25 == 0 else None, grippers=(open_rad, open_rad))
        assert o.status is ControlStatus.MOVE and o.send, o.reason
    assert o.target[6] == pytest.approx(ALOHA2_FOLLOWER_GRIPPER[1], abs=1e-6)  # (the float32 inside the limit)
    # the left arm is pushed 0.9 rad away while its states stay fresh
    o = tick(a, 30 * DT, left=START + np.array([0.9, 0, 0, 0, 0, 0]), grippers=(open_rad, open_rad))
    assert o.status is ControlStatus.HOLD and not o.send
    assert o.reason.startswith("tracking error") and "left_waist" in o.reason, o.reason


def test_future_stamped_states_do_not_keep_the_state_fresh():
    a = make()
    accepted = [a.update_joint_state(side, START, 1.0, 3600.0, now=0.01) for side in ("left", "right")]
    chunk = pose_chunk(1.0)
    for k in range(1, 100):
        t = k * DT
        if k % 25 == 1:
            a.add_chunk(chunk, t, t)
        o = a.step(t)
        if t > 0.25 + 1e-9:
            assert o.status is ControlStatus.HOLD and "state stale" in o.reason and not o.send
    assert accepted == [False, False] and "in the future" in a.last_state_error


# Property: chunks every 3 ticks, states every tick (state timeout 0.05 s = 2.5 periods), the arms follow
# what is sent. Disturbances: a state outage after which the arms are elsewhere (a gripper possibly past
# its close constant), a state stamped in the future (then silence, or normal states), an arm pushed.
CHUNKS_PER_EXAMPLE = 4
EXAMPLES = 2550  # 10,200 chunks
TICKS = 12
STATE_TIMEOUT = 0.05
sane = arrays(np.float64, (6, 14), elements=st.floats(-3.5, 3.5))
extreme = arrays(np.float64, (6, 14), elements=st.floats(allow_nan=False, allow_infinity=False))
poisoned = arrays(np.float64, (6, 14), elements=st.floats(allow_nan=True, allow_infinity=True))
HOME = np.concatenate([START, [1.0], START, [1.0]])
SQUEEZED = ALOHA2_FOLLOWER_GRIPPER[1] - 0.2
ELSEWHERE = [HOME, np.concatenate([MOVED, [SQUEEZED], START, [1.0]]),
             np.concatenate([START, [1.6], MOVED[::-1] * [0, 0.5, 0.5, 1, 0.5, 1], [SQUEEZED]]),
             np.concatenate([np.zeros(6), [1.0], np.zeros(6), [1.0]])]
where = st.sampled_from(range(len(ELSEWHERE)))
disturbance = st.one_of(
    st.none(),
    st.tuples(st.just("outage"), st.integers(1, 7), st.integers(3, 5), where),
    st.tuples(st.just("future"), st.integers(1, 9), st.floats(0.06, 1e4), st.booleans()),
    st.tuples(st.just("pushed"), st.integers(1, 9), where),
)


def beyond_limits(a, q):
    return np.maximum(np.maximum(a.lower - q, q - a.upper), 0.0)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chunks=st.lists(st.one_of(sane, extreme, poisoned), min_size=CHUNKS_PER_EXAMPLE, max_size=CHUNKS_PER_EXAMPLE),
       dry_run=st.booleans(), latency=st.floats(0.0, 0.1), disturbance=disturbance)
def test_property_bimanual_commands_stay_safe(chunks, dry_run, latency, disturbance):
    a = make(armed=not dry_run, safety=SafetyConfig(state_timeout_s=STATE_TIMEOUT))
    kind, at = (disturbance or (None, None))[:2]
    arm_joints = np.array([k % 7 != 6 for k in range(14)])
    tol = (a.velocity * SafetyConfig().tracking_tolerance_s)[arm_joints]
    prev = robot = reported = HOME.copy()
    last_state = 0.0
    silent = pushed = unreported = False
    for i in range(TICKS):
        t = round(i * DT, 9)
        if i % 3 == 0:
            a.add_chunk(chunks[i // 3], t - latency, t)
        stamp = t
        driver_down = kind == "outage" and at <= i < at + disturbance[2]
        if driver_down:
            stamp = None
            robot, unreported = ELSEWHERE[disturbance[3]].copy(), True
        elif kind == "future" and i == at:
            stamp, silent = t + disturbance[2], disturbance[3]
        elif kind == "pushed" and i == at:
            robot, pushed = ELSEWHERE[disturbance[2]].copy(), True
        elif silent:
            stamp = None
        if stamp is not None:
            accepted = [a.update_joint_state(side, robot[7 * k: 7 * k + 6], robot[7 * k + 6], stamp, now=t)
                        for k, side in enumerate(("left", "right"))]
            assert accepted == [stamp <= t] * 2
            if stamp <= t:
                last_state, reported, unreported = t, robot, False
        o = a.step(t)
        assert np.all(np.isfinite(o.target))
        if o.send:  # every command sent is inside the limits once converted to the message's float32
            assert np.all(beyond_limits(a, np.float32(o.target).astype(float)) == 0.0)
        def near(q):  # within one tick's velocity limit of q, or of q clipped to the limits (a command)
            d = np.minimum(np.abs(o.target - q), np.abs(o.target - a.limits.clip_position(q)[0]))
            return np.all(d <= a.velocity * DT + 1e-12)

        assert near(prev) or near(reported)
        if t - last_state > STATE_TIMEOUT + 1e-9:
            assert o.status is not ControlStatus.MOVE and not o.send
        if o.send:
            assert np.all(np.abs(o.target - reported)[arm_joints] <= tol + a.velocity[arm_joints] * DT + 1e-9)
            if not (unreported or pushed):
                assert near(robot)
            if not driver_down:
                robot, pushed = o.target, False
        if dry_run:
            assert not o.send
        prev = o.target
