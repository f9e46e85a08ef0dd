"""An evaluation catches a convention bug: the scripted expert's demonstrations, replayed as a
perfect policy would output them (normalized with the demonstrations' statistics, unnormalized on
the policy side with the statistics its configuration selects), reach the named block on unseen
seeds; flipping the sign of one action dimension, or unnormalizing with another dataset's
statistics (a wrong ``dataset_statistics_key``), makes the success rate collapse.

Pure loops (octo_ros.sim + the WidowX adapter core, test/support/expert_loops.py). The gripper
convention is not exercised by this task: the reach task never closes the gripper. No trained
policy ships yet, so the expert stands in for one."""
import numpy as np
import pytest
from support.expert_loops import run_episodes

from octo_ros.model.normalization import normalize, select_statistics, unnormalize_actions
from octo_ros.robots.widowx.sim import DEFAULT_TASK

TRAIN_SEEDS = range(0, 5)
EVAL_SEEDS = range(1000, 1010)
# Bridge's action statistics as the released Octo checkpoints store them (dataset_statistics.json)
BRIDGE = {"mean": [0.0002, 0.0001, -0.0001, -0.0002, -0.0004, 0.0002, 0.5757],
          "std": [0.0097, 0.0137, 0.0127, 0.0283, 0.0307, 0.0771, 0.4971],
          "mask": [True] * 6 + [False]}


@pytest.fixture(scope="module")
def statistics():
    """What fine-tuning on the demonstrations would store: their action mean/std (gripper unmasked,
    as Bridge), next to another dataset's."""
    actions = []

    def record(action):
        actions.append(np.asarray(action, float))
        return action

    demos = run_episodes("widowx", DEFAULT_TASK, TRAIN_SEEDS, policy_side=record)
    assert all(r.outcome == "success" for r in demos)
    a = np.stack(actions)
    own = {"mean": a.mean(0).tolist(), "std": np.maximum(a.std(0), 1e-6).tolist(), "mask": [True] * 6 + [False]}
    return {"widowx_reach_block": {"action": own}, "bridge_dataset": {"action": BRIDGE}}


def success_rate(statistics, key: str, flip=None) -> float:
    trained = select_statistics(statistics, "widowx_reach_block")["action"]
    selected = select_statistics(statistics, key)["action"]

    def policy_side(action):
        out = unnormalize_actions(normalize(action, trained), selected).astype(float)
        if flip is not None:
            out[flip] = -out[flip]
        return out

    results = run_episodes("widowx", DEFAULT_TASK, EVAL_SEEDS, policy_side=policy_side)
    return sum(r.outcome == "success" for r in results) / len(results)


def test_the_right_conventions_succeed(statistics):
    assert success_rate(statistics, "widowx_reach_block") >= 0.9


@pytest.mark.parametrize("dimension", [1, 2])  # y, z (x: the start often lies over the block's x already)
def test_flipping_the_sign_of_one_action_dimension_collapses_success(statistics, dimension):
    assert success_rate(statistics, "widowx_reach_block", flip=dimension) <= 0.1


def test_unnormalizing_with_another_datasets_statistics_collapses_success(statistics):
    assert success_rate(statistics, "bridge_dataset") <= 0.1
