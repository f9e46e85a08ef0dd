"""The whole graph on the simulated bimanual robot, as `make demo` runs it: camera →
observation buffer → Octo → bimanual adapter → MuJoCo, recorded and reviewed."""
import json
import os

import psutil

from octo_ros.inference.checkpoint_info import checkpoint_content_hash
from octo_ros.recording.bag import read_episode_metadata
from octo_ros.ros.demo import run_demo


def test_demo_closes_the_loop_and_records_it(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    summary = run_demo(tmp_path / "demo", duration=6.0)
    output = capfd.readouterr().out  # every node's output, prefixed [node]
    assert "[aloha_sim] " in output and "[policy] " in output
    assert "Traceback" not in output, f"a node printed a traceback on a normal shutdown:\n{output[-6000:]}"

    assert summary["chunks"] > 5, summary
    assert summary["steps_executed"] > 50, "commands must reach the simulated followers at the control rate"
    assert 0 < summary["inference_latency_p50_ms"] <= summary["inference_latency_p95_ms"]
    bag = tmp_path / "demo" / "bags"
    assert str(bag) in summary["bag"] and os.path.isdir(summary["bag"])
    assert summary["instruction"] == "transfer the cube to the other arm" and summary["outcome"] == "demo"
    assert int(summary["video_frames"]) > 10 and os.path.getsize(summary["video"]) > 1000
    assert {os.path.basename(p) for p in summary["plots"]} >= {"actions.png", "gripper.png", "latency.png"}
    review = json.loads((tmp_path / "demo" / "review" / "summary.json").read_text())
    assert review["metadata"]["checkpoint_id"] == str(tmp_path / "demo" / "checkpoint")
    assert review["metadata"]["dataset_statistics_key"] == "aloha_sim_cube_scripted_dataset"
    # the evidence, from the running graph
    evidence = read_episode_metadata(summary["bag"])
    assert evidence["checkpoint_hash"] == checkpoint_content_hash(tmp_path / "demo" / "checkpoint")
    adapter = json.loads(evidence["adapter_config"])
    assert adapter["left_gripper_open"] == 1.6214 and adapter["dry_run"] is False
    assert evidence["gripper_convention"].startswith("left: model 1 → gripper OPEN")

    leftover = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not leftover, f"processes left running after the demo: {leftover}"
