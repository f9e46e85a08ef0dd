"""The policy server's core without ROS: windows of several robots batched into one
``sample_actions`` call give each robot what its own unbatched call gives (its task, its noise,
its statistics), batches form, a robot never waits for a silent one beyond the batching window,
and robots that do not fit the checkpoint are refused with the mismatch named."""
import threading
import time

import numpy as np
import pytest
import torch
from support.fleet_windows import synthetic_window, two_dataset_checkpoint

from octo_ros.inference.runtime import NO_TASK, model_batch
from octo_ros.inference.server import (
    BatchRow,
    PolicyConfig,
    PolicyServer,
    RobotConfig,
    RobotState,
    sample_batch,
)
from octo_ros.model.normalization import select_statistics
from octo_ros.model.policy import OctoPolicy

SEED = 3
TOLERANCE = 1e-4


def _load(tmp_path_factory, head):
    checkpoint = two_dataset_checkpoint(tmp_path_factory.mktemp(head) / "ck", head)
    return OctoPolicy.load(str(checkpoint), tokenizer=str(checkpoint / "spiece.model"))


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """The diffusion head: each robot's noise must come from its own generator."""
    return _load(tmp_path_factory, "diffusion")


@pytest.fixture(scope="module")
def l1_policy(tmp_path_factory):
    return _load(tmp_path_factory, "l1")


def window(seed, stamp_ns=1_000, size=64, proprio=3):
    return synthetic_window(seed, stamp_ns, size=size, proprio=proprio)


def reference(policy, win, instruction=None, goal=None, key="untrained"):
    """What one robot's own, unbatched call gives: the plain OctoPolicy API."""
    tasks = policy.create_tasks(texts=[instruction] if instruction else None,
                                goals={"image_primary": goal[None]} if goal is not None else None)
    obs = model_batch(win, policy.observation_keys, policy.window_size, policy.proprio_statistics(key))
    out = policy.sample_actions(obs, tasks, dataset_key=key, generator=torch.Generator().manual_seed(SEED))
    return out.normalized[0], out.unnormalized[0]


GOAL = np.full((64, 64, 3), 120, np.uint8)
ROBOTS = [  # (window seed, instruction, goal image, dataset key)
    (1, "pick up the spoon", None, "untrained"),
    (2, "open the drawer", None, "other"),
    (3, None, GOAL, "untrained"),
]


@pytest.mark.parametrize("head", ["diffusion", "l1"])
def test_a_batch_row_equals_the_robots_own_call(request, head):
    policy = request.getfixturevalue({"diffusion": "policy", "l1": "l1_policy"}[head])
    rows, expected = [], []
    for seed, text, goal, key in ROBOTS:
        win = window(seed)
        tasks = policy.create_tasks(texts=[text] if text else None, goals={"image_primary": goal[None]} if goal is not None else None)
        stats = select_statistics(policy.dataset_statistics, key)
        rows.append(BatchRow(model_batch(win, policy.observation_keys, policy.window_size, stats["proprio"]), tasks,
                             stats["action"], torch.Generator().manual_seed(SEED)))
        expected.append(reference(policy, win, text, goal, key))
    got = sample_batch(policy, rows)
    for (normalized, unnormalized), (want_normalized, want_unnormalized) in zip(got, expected):
        # equal to float32 rounding: the GEMMs block differently for another batch size, and the
        # random diffusion head carries that through its steps (actions clipped at +-5)
        np.testing.assert_allclose(normalized, want_normalized, atol=TOLERANCE)
        np.testing.assert_allclose(unnormalized, want_unnormalized, atol=TOLERANCE)
    # the rows really differ (task, observations, statistics): equality above is not trivial
    assert min(np.abs(got[i][1] - got[j][1]).max() for i in range(3) for j in range(i)) > 1e-3


class Served:
    def __init__(self, policy, **config):
        self.chunks: dict[str, list] = {}
        self.warnings: list[str] = []
        self.lock = threading.Lock()
        self.server = PolicyServer(policy, PolicyConfig(seed=SEED, **config), self._publish, lambda name: None,
                                   lambda key, text: self.warnings.append(text))

    def _publish(self, name, chunk):
        with self.lock:
            self.chunks.setdefault(name, []).append(chunk)

    def wait(self, name, count, timeout=30.0):
        deadline = time.monotonic() + timeout
        while len(self.chunks.get(name, [])) < count:
            assert time.monotonic() < deadline, f"{name}: {len(self.chunks.get(name, []))} of {count} chunks"
            time.sleep(0.005)
        return self.chunks[name][count - 1]


def test_windows_ready_together_are_one_call_and_each_robot_gets_its_own_chunk(policy):
    served = Served(policy, batching_window_s=5.0)
    for i, (seed, text, goal, key) in enumerate(ROBOTS):
        served.server.serve(f"r{i}", RobotConfig(dataset_statistics_key=key))
        if text:
            served.server.instruct(f"r{i}", text)
        else:
            served.server.set_goal(f"r{i}", goal)
    served.server.start()
    try:
        wins = [window(seed, stamp_ns=10_000 + i) for i, (seed, *_) in enumerate(ROBOTS)]
        for i, win in enumerate(wins):
            served.server.put_window(f"r{i}", win)
        for i, (seed, text, goal, key) in enumerate(ROBOTS):
            chunk = served.wait(f"r{i}", 1)
            assert chunk.stamp_ns == wins[i].stamp_ns
            np.testing.assert_allclose(chunk.actions, reference(policy, wins[i], text, goal, key)[1], atol=TOLERANCE)
        assert dict(served.server.batch_sizes) == {3: 1}
        assert [s.chunks_published for s in served.server.statuses()] == [1, 1, 1]
        assert not {s.state for s in served.server.statuses()} & {RobotState.ERROR, RobotState.WAITING_FOR_TASK}
    finally:
        served.server.close()


def test_a_silent_robot_delays_the_others_by_at_most_the_batching_window(policy):
    served = Served(policy, batching_window_s=0.3)
    for name in ("alive", "silent"):
        served.server.serve(name, RobotConfig(dataset_statistics_key="untrained"))
        served.server.instruct(name, "pick up the spoon")
    served.server.start()
    try:
        for k in range(3):
            started = time.perf_counter()
            served.server.put_window("alive", window(k, stamp_ns=20_000 + k))
            served.wait("alive", k + 1)
            assert time.perf_counter() - started >= 0.3, "the batcher waits for the other robot with a task"
        assert "silent" not in served.chunks and dict(served.server.batch_sizes) == {1: 3}
    finally:
        served.server.close()


def test_robots_that_do_not_fit_are_refused_naming_the_mismatch(policy):
    served = Served(policy)
    with pytest.raises(ValueError, match="several datasets"):
        served.server.serve("a", RobotConfig())
    with pytest.raises(ValueError, match="unknown dataset key 'bridge'"):
        served.server.serve("a", RobotConfig(dataset_statistics_key="bridge"))
    with pytest.raises(ValueError, match="has 2 names but the model's actions have 7 dimensions"):
        served.server.serve("a", RobotConfig("untrained", ("x", "y")))
    assert served.server.robots == []

    served.server.serve("a", RobotConfig("untrained"))
    served.server.serve("b", RobotConfig("untrained"))
    for name in "ab":
        served.server.instruct(name, "pick up the spoon")
    served.server.start()
    try:
        with pytest.raises(ValueError, match="image_primary frames are 32x32 RGB; the model takes 64x64 RGB"):
            served.server.put_window("a", window(1, size=32))
        with pytest.raises(ValueError, match="proprio has 5 values"):
            served.server.put_window("a", window(1, proprio=5))
        status = served.server.status("a")
        assert status.state == RobotState.ERROR and "proprio has 5 values" in status.message
        served.server.put_window("b", window(2))  # the other robot is served
        served.wait("b", 1)
        assert "a" not in served.chunks
    finally:
        served.server.close()


def test_a_task_is_changed_the_same_way_however_it_arrives(policy):
    served = Served(policy)
    served.server.serve("a", RobotConfig("untrained"))
    assert served.server.set_task("a", instruction="open the drawer").instruction == "open the drawer"
    task = served.server.set_task("a", goal=GOAL)  # the instruction stays
    assert task.instruction == "open the drawer" and np.array_equal(task.goals["image_primary"], GOAL)
    assert served.server.status("a").state == RobotState.WAITING_FOR_OBSERVATION
    assert served.server.set_task("a", instruction="ignored", clear=True) is NO_TASK
    assert served.server.status("a").state == RobotState.WAITING_FOR_TASK


def test_the_model_gets_the_window_it_was_trained_with(tmp_path):
    """A checkpoint trained on one-step windows, served the buffer's two-step windows: the model
    sees the newest step only, at the timestep position it learned (``max_horizon`` is a bound)."""
    from octo_ros.model.testing import make_random_checkpoint, write_tokenizer

    path = tmp_path / "one_step"
    make_random_checkpoint(path, "tiny", cameras=("primary",), head="l1", proprio_dim=3, window_size=1, dataset="untrained")
    write_tokenizer(path)
    one_step = OctoPolicy.load(str(path), tokenizer=str(path / "spiece.model"))
    assert one_step.window_size == 1 < one_step.max_window
    served = Served(one_step, batching_window_s=0.0)
    served.server.serve("r", RobotConfig(dataset_statistics_key="untrained"))
    served.server.instruct("r", "pick up the spoon")
    served.server.start()
    try:
        win = window(7, stamp_ns=50_000)
        served.server.put_window("r", win)
        chunk = served.wait("r", 1)
    finally:
        served.server.close()
    tasks = one_step.create_tasks(texts=["pick up the spoon"])

    def actions(steps):
        obs = model_batch(win, one_step.observation_keys, steps, one_step.proprio_statistics("untrained"))
        return one_step.sample_actions(obs, tasks, dataset_key="untrained").unnormalized[0]

    np.testing.assert_allclose(chunk.actions, actions(1), atol=TOLERANCE)
    assert not np.allclose(actions(1), actions(2), atol=TOLERANCE), "both windows give the same actions: nothing tested"
