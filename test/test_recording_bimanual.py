"""A bimanual ALOHA episode (two follower JointState topics with equal joint names, a 14-D
action) exports the model's 14-D proprio as ``observation.state``, built by the observation
buffer's rules with the layout the graph gives the recorder (``config/bimanual.yaml``), and
reviews with one readable subplot per arm."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState

from octo_ros.cli import main as cli
from octo_ros.perception.observation import ProprioLayout
from octo_ros.recording.bag import EpisodeBagWriter, EpisodeInfo, TopicSpec
from octo_ros.recording.reading import load_episode
from octo_ros.ros.graph import config_dir, describe, load_parameters
from octo_ros_msgs.msg import ActionChunk

S = 1_000_000_000
ARM = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]
XS_SDK_NAMES = [*ARM, "gripper", "left_finger", "right_finger"]  # what an xs_sdk follower publishes
ACTION_NAMES = [f"{side}_{j}" for side in ("left", "right") for j in [*ARM, "gripper"]]
LEFT, RIGHT = "/follower_left/joint_states", "/follower_right/joint_states"
CLOSE, OPEN = 0.0440, 0.0579  # config/bimanual.yaml proprio_normalization (ALOHA 2 followers)
DURATION, HORIZON, PERIOD = 1.2, 10, 0.02


def _time(ns):
    return Time(sec=ns // S, nanosec=ns % S)


def finger(side: str, j: int) -> float:
    """Finger position (m) of sample j: sweeps close → open, the two arms out of phase."""
    phase = (j % 50) / 49 if side == "left" else 1 - (j % 50) / 49
    return CLOSE + phase * (OPEN - CLOSE)


def record(out: Path, layout: dict | None) -> Path:
    topics = [TopicSpec("/cam_high/image_raw", "sensor_msgs/msg/Image", "sensor"),
              TopicSpec(LEFT, "sensor_msgs/msg/JointState"), TopicSpec(RIGHT, "sensor_msgs/msg/JointState"),
              TopicSpec("/action_chunk", "octo_ros_msgs/msg/ActionChunk")]
    info = EpisodeInfo(robot="bimanual", instruction="transfer the cube", proprio_layout=layout or {})
    w = EpisodeBagWriter(out, info, topics, name="bimanual_episode" + ("" if layout else "_old"))
    T = time.time_ns()
    msgs = []
    for m in range(int(DURATION * 10)):
        img = Image(height=24, width=32, encoding="rgb8", step=96, data=bytes(24 * 32 * 3))
        img.header.stamp = _time(T + m * S // 10)
        msgs.append((T + m * S // 10 + 2_000_000, "/cam_high/image_raw", img))
    for j in range(int(DURATION * 50)):
        for side, topic, offset in (("left", LEFT, 1_000_000), ("right", RIGHT, 1_500_000)):
            sign = 1 if side == "left" else -1
            js = JointState(name=XS_SDK_NAMES, position=[sign * (0.01 * j + k) for k in range(6)]
                            + [0.3, finger(side, j), -finger(side, j)])
            js.header.stamp = _time(T + j * S // 50)
            msgs.append((T + j * S // 50 + offset, topic, js))
    for i in range(int(DURATION / 0.2)):  # a 10-step chunk every 0.2 s: chunk boundaries and gaps
        t = T + i * S // 5 + 3_000_000
        actions = np.array([[i + r / 100 + d / 1000 for d in range(14)] for r in range(HORIZON)], np.float32)
        actions[:, [6, 13]] = [i % 2, 1 - i % 2]
        chunk = ActionChunk(sequence=i, horizon=HORIZON, action_dim=14, step_period=PERIOD, dimension_names=ACTION_NAMES,
                            actions=actions.ravel().tolist(), normalized=[0.0] * 14 * HORIZON, task="language: transfer")
        chunk.header.stamp = _time(t - 10_000_000)
        msgs.append((t, "/action_chunk", chunk))
    for t, topic, msg in sorted(msgs, key=lambda x: x[0]):
        w.write(topic, t, serialize_message(msg))
    return w.close("success")


def bimanual_layout() -> dict:
    return ProprioLayout.from_parameters(load_parameters(config_dir() / "bimanual.yaml")["observation_buffer"]).to_dict()


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    out = tmp_path_factory.mktemp("bimanual")
    return record(out, bimanual_layout()), record(out, None)


def expected_state(state_times_ns: np.ndarray, t0_ns: int) -> np.ndarray:
    """The 14-D ALOHA proprio at each time, from the generator above (not from the exporter)."""
    rows = []
    for t in state_times_ns - t0_ns:
        row = []
        for side, offset in (("left", 1_000_000), ("right", 1_500_000)):
            j = int((t - offset) // (S // 50))
            sign = 1 if side == "left" else -1
            row += [sign * (0.01 * j + k) for k in range(6)] + [(finger(side, j) - CLOSE) / (OPEN - CLOSE)]
        rows.append(row)
    return np.array(rows, np.float32)


@pytest.mark.parametrize("sim, close_open", [(False, (CLOSE, OPEN)), (True, (0.01844, 0.05800))])
def test_the_graph_gives_the_recorder_the_buffer_s_layout(sim, close_open):
    """Two sources, 14 joints, the normalization of the robot actually driven (sim overlay too)."""
    recorder = next(n for n in describe("bimanual", sim=sim, arguments={"record": "true"}) if n.name == "recorder")
    layout = ProprioLayout.from_dict(json.loads(recorder.parameters["proprio_layout"]))
    # relative, as every topic of a robot's graph (the recorder resolves them in its namespace)
    assert [(s.topic, s.prefix) for s in layout.sources] == [(LEFT[1:], "left_"), (RIGHT[1:], "right_")]
    assert list(layout.joint_names) == [f"{s}_{j}" for s in ("left", "right") for j in [*ARM, "left_finger"]]
    assert layout.normalization == {"left_left_finger": close_open, "right_left_finger": close_open}
    if not sim:
        assert layout.to_dict() == bimanual_layout()


def test_episode_state_is_the_14d_aloha_proprio(bags):
    ep = load_episode(bags[0])
    assert ep.state_names == [f"{s}_{j}" for s in ("left", "right") for j in [*ARM, "left_finger"]]
    assert ep.states.shape[1] == 14 and ep.states.dtype == np.float32
    assert "recorded" in ep.state_origin
    # a state exists once both arms reported; every later joint state of either arm updates it
    assert len(ep.state_times) == 2 * int(DURATION * 50) - 1
    t0 = int(ep.state_times[0]) - 1_500_000  # the first right-arm message completes the first state
    np.testing.assert_allclose(ep.states, expected_state(ep.state_times, t0), atol=1e-5)
    assert ep.states[:, [6, 13]].min() >= -1e-6 and ep.states[:, [6, 13]].max() <= 1 + 1e-6


def test_without_a_recorded_layout_two_arms_are_refused_not_guessed(bags, tmp_path):
    ep = load_episode(bags[1])
    assert ep.states is None and LEFT in ep.state_origin and RIGHT in ep.state_origin
    with pytest.raises(SystemExit, match="no robot state"):
        cli(["export", str(bags[1]), "--format", "lerobot", str(tmp_path / "out"), "--quiet"])


def test_lerobot_export_keeps_both_arms_with_names(bags, tmp_path):
    out = tmp_path / "lerobot"
    assert cli(["export", str(bags[0]), "--format", "lerobot", str(out), "--quiet", "--codec", "libx264"]) == 0
    info = json.loads((out / "meta/info.json").read_text())
    assert info["fps"] == 50 and info["robot_type"] == "bimanual"
    assert info["features"]["observation.state"] == {
        "dtype": "float32", "shape": [14], "names": [f"{s}_{j}" for s in ("left", "right") for j in [*ARM, "left_finger"]]}
    assert info["features"]["action"]["shape"] == [14] and info["features"]["action"]["names"] == ACTION_NAMES
    data = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    ep = load_episode(bags[0])
    state = np.array(data["observation.state"], np.float32)
    first_action = int(ep.chunks.times[0])
    grid = first_action + np.round(np.arange(len(state)) * 1e9 / 50).astype(np.int64)
    t0 = int(ep.state_times[0]) - 1_500_000
    np.testing.assert_allclose(state, expected_state(grid, t0), atol=1e-5)
    stats = json.loads((out / "dataset_statistics.json").read_text())
    assert len(stats["proprio"]["mean"]) == 14


def test_review_plots_one_subplot_per_arm_with_units_and_chunk_boundaries(bags, tmp_path):
    from octo_ros.recording.review import actions_figure

    ep = load_episode(bags[0])
    fig = actions_figure(ep)
    axes = fig.axes
    titles = [ax.get_title() for ax in axes]
    assert titles == ["left arm", "right arm", "grippers"], titles
    assert [ax.get_ylabel() for ax in axes] == ["joint position [rad]", "joint position [rad]", "gripper [0 closed, 1 open]"]
    assert all(ax.get_xlabel() == "time [s]" for ax in axes[-1:])
    assert [len(ax.get_lines()) for ax in axes] == [6, 6, 2]  # one line per joint: 6 + 6 + 2 grippers
    boundaries = (ep.chunks.times - ep.start_ns) / 1e9
    for ax in axes:  # each chunk's arrival is marked on every subplot
        marks = sorted(x for c in ax.collections for seg in c.get_segments() for x in {seg[0][0]})
        np.testing.assert_allclose(marks, boundaries, atol=1e-6)
    assert cli(["review", str(bags[0]), "--out", str(tmp_path / "review")]) == 0
    assert (tmp_path / "review" / "actions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
