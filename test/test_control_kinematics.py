import numpy as np
import pytest

from octo_ros.control.kinematics import forward_kinematics, pose_error, solve_ik
from octo_ros.robots.interbotix.kinematics import VX300S, WX250S


@pytest.mark.parametrize("arm", [WX250S, VX300S], ids=lambda a: a.name)
def test_ik_round_trip_over_reachable_workspace(arm):
    rng = np.random.default_rng(7)
    lo, hi = np.array(arm.limits.lower), np.array(arm.limits.upper)
    solved = 0
    for _ in range(200):
        q_true = rng.uniform(lo * 0.9, hi * 0.9)
        T = forward_kinematics(arm, q_true)
        seed = q_true + rng.normal(0.0, 0.15, 6)  # "current joints" near the answer
        res = solve_ik(arm, T, seeds=[seed])
        assert res.success, res.reason
        dp, dr = pose_error(forward_kinematics(arm, res.q), T)
        assert dp < 1e-3 and dr < 0.01
        assert arm.limits.within_position(res.q)
        solved += 1
    assert solved == 200


def test_home_pose_matches_published_m():
    np.testing.assert_allclose(forward_kinematics(WX250S, np.zeros(6))[:3, 3], [0.458325, 0.0, 0.36065])


def test_unreachable_target_fails_with_reason():
    T = np.eye(4)
    T[:3, 3] = [1.5, 0.0, 0.2]  # far beyond the 0.65 m reach
    res = solve_ik(WX250S, T, seeds=[np.zeros(6)])
    assert not res.success and res.q is None and "converge" in res.reason


def test_non_finite_target_fails():
    T = np.eye(4)
    T[0, 3] = np.nan
    assert not solve_ik(WX250S, T).success
