"""`octo-ros collect` end to end, as a user runs it on a fresh clone: the simulated WidowX, its
adapter, the teleop node and the recorder as processes, the scripted expert driving the teleop
inputs; two short episodes (the second by resuming), then `octo-ros export --format lerobot`.
Plus the resume rules on real bags."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from octo_ros.recording.bag import EpisodeBagWriter, EpisodeInfo, read_episode_metadata
from octo_ros.robots.widowx.sim import TASKS
from octo_ros.ros.collect import UNFINISHED_DIR, finished_episodes, set_aside_unfinished
from octo_ros.sim.reach import sample_scene

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["widowx_sim.image_width:=64", "widowx_sim.image_height:=48"]


def octo_ros(*args, timeout=240):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.run([sys.executable, "-m", "octo_ros.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def _bag(out: Path, name: str, metadata: dict, outcome: str | None) -> Path:
    writer = EpisodeBagWriter(out, EpisodeInfo(robot="widowx", metadata=metadata), [], name=name)
    if outcome is None:
        writer.abort()  # a recorder that died mid-episode
    else:
        writer.close(outcome)
    return writer.path


def test_resume_skips_finished_episodes_and_sets_aside_the_rest(tmp_path):
    meta = {"task": "reach_block", "collect_seed": "5"}
    _bag(tmp_path, "a", {**meta, "collect_episode": "0"}, "success")
    _bag(tmp_path, "b", {**meta, "collect_episode": "1"}, "failure")
    interrupted = _bag(tmp_path, "c", {**meta, "collect_episode": "2"}, "interrupted")
    torn = _bag(tmp_path, "d", {**meta, "collect_episode": "3"}, None)
    moved = set_aside_unfinished(tmp_path)
    assert sorted(p.name for p in moved) == [interrupted.name, torn.name]
    assert all(p.parent == tmp_path / UNFINISHED_DIR and p.is_dir() for p in moved)
    assert sorted(finished_episodes(tmp_path, "reach_block", 5)) == [0, 1]
    with pytest.raises(ValueError, match="another collection"):
        finished_episodes(tmp_path, "reach_block", 6)


def test_collect_then_export_lerobot(ros, tmp_path):
    out = tmp_path / "demos"
    first = octo_ros("collect", "widowx", str(out), "--episodes", "1", "--seed", "7", "--no-progress", *SMALL)
    assert first.returncode == 0, first.stdout + first.stderr + (out / ".collect.log").read_text()
    assert "episode 0 (seed 7): success" in first.stdout
    assert "never retrieved" not in first.stderr, first.stderr  # the operator's node was torn down cleanly
    resumed = octo_ros("collect", "widowx", str(out), "--episodes", "2", "--seed", "7", "--no-progress", *SMALL)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "episode 0 " not in resumed.stdout and "episode 1 (seed 8): success" in resumed.stdout

    bags = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(bags) == 2
    infos = sorted((read_episode_metadata(b) for b in bags), key=lambda i: int(i["metadata"]["collect_episode"]))
    instructions = [sample_scene("reach_block", TASKS["reach_block"], seed).instruction for seed in (7, 8)]
    assert [i["instruction"] for i in infos] == instructions
    assert [i["outcome"] for i in infos] == ["success", "success"]
    assert [i["metadata"]["task_seed"] for i in infos] == ["7", "8"]
    assert all(i["notes"]["success_check"] == "simulator" and i["notes"]["reward"] == "1" for i in infos)

    done = octo_ros("collect", "widowx", str(out), "--episodes", "2", "--seed", "7", "--no-progress", *SMALL)
    assert done.returncode == 0 and "all 2 episodes" in done.stdout

    dataset = tmp_path / "lerobot"
    exported = octo_ros("export", *map(str, bags), "--format", "lerobot", str(dataset), "--quiet")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    info = json.loads((dataset / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "widowx" and info["total_episodes"] == 2
    assert info["features"]["action"]["names"] == ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
    assert info["features"]["observation.images.camera"]["shape"] == [48, 64, 3]  # /camera/image_raw
    data = pq.read_table(dataset / "data/chunk-000/file-000.parquet").to_pydict()
    assert set(data["source"]) == {"teleop"} and set(data["episode_label"]) == {"success"}
    assert sorted(set(data["episode_index"])) == [0, 1] and info["total_frames"] == len(data["index"]) > 10
    moved = [a[0] for a in data["action"] if abs(a[0]) > 1e-4 or abs(a[1]) > 1e-4 or abs(a[2]) > 1e-4]
    assert moved  # the expert's motions are the actions
    tasks = pq.read_table(dataset / "meta/tasks.parquet").to_pydict()
    assert sorted(tasks["task"]) == sorted(set(instructions))


def test_collect_one_ur5_episode(ros, tmp_path):
    """The UR5 path: Twist into the adapter's in-process controller, judged by ur5_sim's drawn arm."""
    robot, sim = "ur5", "ur5_sim"
    out = tmp_path / "demos"
    run = octo_ros("collect", robot, str(out), "--episodes", "1", "--seed", "3", "--no-progress",
                   f"{sim}.image_width:=64", f"{sim}.image_height:=48")
    assert run.returncode == 0, run.stdout + run.stderr + (out / ".collect.log").read_text()
    assert "episode 0 (seed 3): success" in run.stdout
    (bag,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    info = read_episode_metadata(bag)
    assert info["robot"] == robot and info["outcome"] == "success" and info["metadata"]["task_seed"] == "3"
