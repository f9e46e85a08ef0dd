"""`octo-ros evaluate` through the real graph over DDS (buffer -> policy process -> armed adapter ->
widowx_sim), with the untrained checkpoint: two seeded episodes, the policy process killed
(SIGKILL) while episode 0 runs; episode 1 runs on the restarted graph. The bookkeeping, the failure modes and the files are checked; the
untrained policy is not expected to succeed."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from octo_ros.evaluation import FAILURE_MODES, wilson_interval
from octo_ros.ros.evaluate import Evaluation, EvaluationSettings

# Two graph start-ups, bags and videos: minutes on a loaded 2-core machine (the default is 300 s).
pytestmark = pytest.mark.timeout(900)

SEEDS = [5000, 5001]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    evaluation = Evaluation(EvaluationSettings(robot="widowx", task="reach_block", checkpoint="untrained",
                                               seeds=SEEDS, out=out, progress=False))
    killed = {}

    def kill_policy_in_episode_0():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not (evaluation.episode == 0 and evaluation.armed):
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the 8 s episode
        proc = evaluation.graph.processes["policy"]
        killed["pid"] = proc.pid
        os.kill(proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_policy_in_episode_0, daemon=True)
    killer.start()
    summary = evaluation.run()
    killer.join(timeout=5)
    return out, summary, killed


def test_summary_bookkeeping(evaluated):
    out, summary, _ = evaluated
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["episodes"] == 2 and summary["seeds"] == SEEDS
    assert summary["successes"] == sum(e["success"] for e in summary["per_episode"])
    assert summary["success_rate"] == pytest.approx(summary["successes"] / 2)
    assert summary["wilson_95"] == pytest.approx(list(wilson_interval(summary["successes"], 2)))
    assert sum(summary["failure_modes"].values()) == 2 - summary["successes"]
    for e in summary["per_episode"]:
        assert e["failure_mode"] in (None, *FAILURE_MODES)
        assert e["instruction"].startswith("put the gripper on the ") and e["instruction_target"] == e["target"]


def test_episodes_ran_through_the_armed_adapter_and_were_recorded(evaluated):
    from octo_ros.recording.bag import read_episode_metadata

    _, summary, _ = evaluated
    for e in summary["per_episode"]:
        meta = read_episode_metadata(Path(e["bag"]))
        assert meta["instruction"] == e["instruction"]
        assert meta["outcome"] == ("success" if e["success"] else "failure")
        if not e["success"]:
            assert Path(e["video"]).is_file() and Path(e["video"]).stat().st_size > 1000
    after = summary["per_episode"][1]
    assert after["steps"] > 5, "the armed adapter sent commands to the simulated robot"
    assert after["seconds"] >= 0.6


def test_a_killed_policy_is_that_episodes_failure_mode_and_the_next_episode_runs(evaluated):
    _, summary, killed = evaluated
    assert "pid" in killed
    dead, after = summary["per_episode"]
    assert dead["failure_mode"] == "node_error"
    assert dead["failure_detail"].startswith("policy (exit code -9)")
    assert dead["success"] is False
    assert after["failure_mode"] != "node_error"
    assert after["seed"] == SEEDS[1] and after["steps"] > 5


def test_evidence_table(evaluated):
    out, summary, _ = evaluated
    evidence = json.loads((out / "evidence.json").read_text())
    assert evidence["checkpoint_hash"].startswith("sha256:")
    assert evidence["cameras"] == {"image_primary": "64x64"}
    assert evidence["dataset_statistics_key"] == "untrained"
    assert evidence["execution_mode"] == "temporal_ensemble"
    assert evidence["adapter"]["max_step_translation"] == 0.05
    assert "PWM" in evidence["gripper_convention"] and evidence["seeds"] == SEEDS
    assert evidence["software_version"].startswith("octo_ros ")
    table = (out / "evidence.md").read_text()
    assert evidence["checkpoint_hash"] in table and "temporal_ensemble" in table
    assert "node_error: policy (exit code -9)" in table
