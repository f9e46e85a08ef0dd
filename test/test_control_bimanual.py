import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from octo_ros.control.bimanual import ALOHA_ORIGINAL_PUPPET_GRIPPER, ArmSideConfig, BimanualAdapter, BimanualConfig
from octo_ros.control.chunking import ChunkExecutionConfig, ExecutionMode
from octo_ros.control.interbotix_sim import InterbotixSimConfig, InterbotixSimDriver
from octo_ros.control.safety import ControlStatus

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
    assert left.gripper == 1.6214 and right.gripper == -0.6213  # ALOHA 2 vs original constants
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


CHUNKS_PER_EXAMPLE = 4
EXAMPLES = 2550  # 10,200 chunks
sane = arrays(np.float64, (6, 14), elements=st.floats(-3.5, 3.5))
extreme = arrays(np.float64, (6, 14), elements=st.floats(allow_nan=False, allow_infinity=False))
poisoned = arrays(np.float64, (6, 14), elements=st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chunks=st.lists(st.one_of(sane, extreme, poisoned), min_size=CHUNKS_PER_EXAMPLE, max_size=CHUNKS_PER_EXAMPLE),
       dry_run=st.booleans(), latency=st.floats(0.0, 0.1))
def test_property_bimanual_commands_stay_safe(chunks, dry_run, latency):
    a = make(armed=not dry_run)
    prev = np.concatenate([START, [1.0], START, [1.0]])
    for i in range(2 * CHUNKS_PER_EXAMPLE):
        t = i * DT
        if i % 2 == 0:
            a.add_chunk(chunks[i // 2], t - latency, t)
        for side in ("left", "right"):
            a.update_joint_state(side, START, 1.0, t)
        o = a.step(t)
        assert np.all(np.isfinite(o.target))
        assert np.all(o.target >= a.lower - 1e-12) and np.all(o.target <= a.upper + 1e-12)
        assert np.all(np.abs(o.target - prev) <= a.velocity * DT + 1e-12)
        if dry_run:
            assert not o.send
        prev = o.target
