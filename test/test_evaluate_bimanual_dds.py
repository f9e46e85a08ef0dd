"""`octo-ros evaluate bimanual` through the real graph over DDS (buffer -> policy process -> armed
bimanual adapter -> aloha_sim), with the untrained 14-D checkpoint: the simulator lays out the
cube of the seed, the armed adapter commands both followers, the episode is judged by the
simulator's lift check and recorded; the evidence names both arms' gripper conventions."""
import json
from pathlib import Path

import pytest

from octo_ros.recording.bag import read_episode_metadata
from octo_ros.robots.bimanual.sim import TASKS
from octo_ros.ros.evaluate import Evaluation, EvaluationSettings

pytestmark = pytest.mark.timeout(600)


def test_a_bimanual_episode_runs_armed_and_is_judged_by_the_simulator(tmp_path, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    summary = Evaluation(EvaluationSettings(robot="bimanual", task="lift_cube", checkpoint="untrained", seeds=[7],
                                            out=tmp_path, progress=False)).run()
    assert summary["episodes"] == 1 and summary["seeds"] == [7]
    (episode,) = summary["per_episode"]
    assert episode["instruction"] == TASKS["lift_cube"].instruction
    assert episode["steps"] > 20, "the armed adapter sent commands to the followers"
    assert episode["success"] is (episode["failure_mode"] is None)
    if not episode["success"]:
        assert episode["failure_mode"] == "timeout" and episode["seconds"] >= TASKS["lift_cube"].rule.timeout_s
        assert Path(episode["video"]).is_file()
    meta = read_episode_metadata(Path(episode["bag"]))
    assert meta["instruction"] == episode["instruction"] and meta["metadata"]["seed"] == "7"
    evidence = json.loads((tmp_path / "evidence.json").read_text())
    assert evidence["robot"] == "bimanual" and evidence["dataset_statistics_key"] == "aloha_sim_cube_scripted_dataset"
    assert evidence["gripper_convention"].startswith("left: policy gripper 1 = open")
    assert "right:" in evidence["gripper_convention"]
    assert evidence["adapter"]["left_namespace"] == "follower_left"


def test_swapping_the_target_needs_a_task_with_targets(tmp_path):
    with pytest.raises(ValueError, match="--swap-target needs a task with several targets"):
        Evaluation(EvaluationSettings(robot="bimanual", task="lift_cube", checkpoint="untrained", seeds=[0],
                                      out=tmp_path, swap_target=True, progress=False)).run()
