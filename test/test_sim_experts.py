"""Simulated tasks and scripted experts, pure closed loops (no ROS): the scene of a seed, the
simulator's own success check, and the expert against a random operator over 20 seeded episodes
per task, through each robot's adapter core."""

import numpy as np
import pytest
from support.expert_loops import run_bimanual_episodes, run_episodes

from octo_ros.robots.bimanual.sim import TASKS as ALOHA_TASKS
from octo_ros.robots.bimanual.sim import AlohaSim
from octo_ros.robots.ur5.sim import TASKS as UR5_TASKS
from octo_ros.robots.widowx.sim import TASKS as WIDOWX_TASKS
from octo_ros.robots.widowx.sim import WidowXSim, WidowXSimConfig
from octo_ros.sim.reach import BLOCK_COLOURS, sample_scene
from octo_ros.sim.tasks import EpisodeJudge, EpisodeRule

SEEDS = range(20)


def test_episode_judge_needs_an_unbroken_hold_before_the_timeout():
    judge = EpisodeJudge(EpisodeRule(timeout_s=2.0, hold_s=0.5), start=1.0)
    assert judge.update(1.0, True) is None and judge.update(1.4, False) is None  # broken after 0.4 s
    assert judge.update(1.6, True) is None and judge.update(2.0, True) is None
    assert judge.update(2.1, True) == "success"
    late = EpisodeJudge(EpisodeRule(timeout_s=2.0, hold_s=0.5), start=0.0)
    assert late.update(1.8, True) is None and late.update(2.0, True) == "failure"


@pytest.mark.parametrize("tasks", [WIDOWX_TASKS, UR5_TASKS])
def test_reach_scenes_are_seeded_and_name_one_of_their_blocks(tasks):
    config = tasks["reach_block"]
    scenes = [sample_scene("reach_block", config, seed) for seed in SEEDS]
    assert sample_scene("reach_block", config, 3) == scenes[3]
    assert len({(s.colours, s.target) for s in scenes}) > 5  # the seeds really vary the scene
    for s in scenes:
        assert config.blocks[0] <= len(s.blocks) <= config.blocks[1] and len(set(s.colours)) == len(s.colours)
        assert s.instruction == f"put the gripper on the {s.colours[s.target]} block"
        centres = np.array([b.center[:2] for b in s.blocks])
        assert np.all((centres >= config.block_low) & (centres <= config.block_high))
        gaps = [np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1:]]
        assert min(gaps) >= config.min_separation


def test_reach_check_is_the_tip_over_the_named_block():
    scene = sample_scene("reach_block", WIDOWX_TASKS["reach_block"], 0)
    top = scene.target_top
    assert scene.on_target(top + (0.005, 0.0, 0.01))
    assert not scene.on_target(top + (0.03, 0.0, 0.01))  # beside it
    assert not scene.on_target(top + (0.0, 0.0, 0.06))  # far above
    assert not scene.on_target(top - (0.0, 0.0, 0.01))  # inside the block
    other = next(i for i in range(len(scene.blocks)) if i != scene.target)
    b = scene.blocks[other]
    assert not scene.on_target((b.center[0], b.center[1], top[2] + 0.01))  # on another block


def test_widowx_camera_shows_the_named_block_and_status_comes_from_the_arm():
    sim = WidowXSim(WidowXSimConfig(image_width=160, image_height=120))
    assert sim.task_status() is None
    for seed in range(5):
        scene = sim.set_task("reach_block", seed)
        image = sim.render().reshape(-1, 3).astype(int)
        colour = np.array(BLOCK_COLOURS[scene.colours[scene.target]])
        assert (np.abs(image - colour).max(axis=1) < 40).sum() >= 10  # its top face, in pixels
    status = sim.task_status()
    assert status.instruction == scene.instruction and status.seed == 4 and not status.success
    np.testing.assert_allclose(status.values["tip"], sim.tip_position())


def test_aloha_cube_is_seeded_and_judged_by_the_gym_aloha_reward():
    sim = AlohaSim()
    pose = sim.set_task("lift_cube", 7)
    np.testing.assert_array_equal(pose, sim.set_task("lift_cube", 7))
    assert 0.0 <= pose[0] <= 0.2 and 0.4 <= pose[1] <= 0.6
    sim.step(25)
    status = sim.task_status()
    assert status.reward == 0.0 and not status.success  # resting on the table, untouched
    assert status.values["cube"][2] == pytest.approx(0.02, abs=2e-3)


@pytest.mark.parametrize("robot", ["widowx", "ur5"])
def test_reach_expert_succeeds_and_random_operator_does_not(robot):
    expert = run_episodes(robot, "reach_block", SEEDS, "expert")
    random = run_episodes(robot, "reach_block", SEEDS, "random")
    assert all(r.reset_ok for r in expert)
    assert sum(r.outcome == "success" for r in expert) >= 18
    assert sum(r.outcome == "success" for r in random) <= 2


def test_aloha_lift_expert_succeeds_and_random_operator_does_not():
    assert ALOHA_TASKS["lift_cube"].success_reward == 2
    expert = run_bimanual_episodes("lift_cube", SEEDS, "expert")
    random = run_bimanual_episodes("lift_cube", SEEDS, "random")
    assert sum(r.outcome == "success" for r in expert) >= 18
    assert sum(r.outcome == "success" for r in random) <= 2
