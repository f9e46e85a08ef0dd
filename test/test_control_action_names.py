"""Action dimension names are checked by every adapter (issue #12 item 6): a chunk whose names are
not the adapter's layout is refused naming both layouts; an exact permutation is executed
reordered only when configured to (and says so)."""
import numpy as np
import pytest

from octo_ros.control.chunking import ChunkExecutionConfig, ExecutionMode
from octo_ros.robots.bimanual.adapter import BimanualAdapter, BimanualConfig
from octo_ros.robots.ur5.adapter import URAdapter, URConfig
from octo_ros.robots.widowx.adapter import WidowXAdapter, WidowXConfig

DELTA = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
ALOHA = tuple(f"{s}_{j}" for s in ("left", "right")
              for j in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"))


def make(robot: str, reorder: bool = False):
    if robot == "widowx":
        return WidowXAdapter(WidowXConfig(execution=ChunkExecutionConfig(reorder_action_dimensions=reorder)))
    if robot == "ur5":
        return URAdapter(URConfig((0.25, -0.3, 0.05), (0.6, 0.3, 0.45),
                                  execution=ChunkExecutionConfig(reorder_action_dimensions=reorder)))
    return BimanualAdapter(BimanualConfig(execution=ChunkExecutionConfig(
        step_period_s=0.02, mode=ExecutionMode.RECEDING_HORIZON, exec_horizon=50, reorder_action_dimensions=reorder)))


LAYOUTS = {"widowx": DELTA, "ur5": DELTA, "bimanual": ALOHA}
MISMATCHES = {
    "widowx": [("gripper", "yaw", "pitch", "roll", "z", "y", "x"), tuple(f"a{i}" for i in range(7)), ()],
    "ur5": [("gripper", "yaw", "pitch", "roll", "z", "y", "x"), tuple(f"a{i}" for i in range(7)), ()],
    "bimanual": [ALOHA[7:] + ALOHA[:7], tuple(f"a{i}" for i in range(14)), ()],
}
CASES = [(robot, names) for robot, cases in MISMATCHES.items() for names in cases]


@pytest.mark.parametrize("robot, names", CASES, ids=[f"{r}-{'-'.join(n[:2]) or 'unnamed'}" for r, n in CASES])
def test_mismatched_names_are_refused_naming_both_layouts(robot, names):
    adapter = make(robot)
    actions = np.zeros((4, len(LAYOUTS[robot])))
    result = adapter.add_chunk(actions, 1.0, 1.0, names=names)
    assert not result.accepted
    assert str(list(LAYOUTS[robot])) in result.reason
    assert (str(list(names)) in result.reason) if names else "no action dimension names" in result.reason
    assert adapter.add_chunk(actions, 1.1, 1.1, names=LAYOUTS[robot]).accepted


@pytest.mark.parametrize("robot", sorted(LAYOUTS))
def test_a_permutation_is_reordered_only_when_configured(robot):
    layout = LAYOUTS[robot]
    names = tuple(reversed(layout))
    actions = np.tile(np.arange(len(layout), dtype=float)[::-1] / 100, (4, 1))  # column k holds names[k]'s value
    refused = make(robot).add_chunk(actions, 1.0, 1.0, names=names)
    assert not refused.accepted and "reorder_action_dimensions" in refused.reason
    adapter = make(robot, reorder=True)
    result = adapter.add_chunk(actions, 1.0, 1.0, names=names)
    assert result.accepted and "reordered" in result.note
    executed = adapter.executor._chunks[-1].actions
    np.testing.assert_allclose(executed[0], np.arange(len(layout)) / 100)  # back in the adapter's layout
