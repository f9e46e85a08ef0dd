"""Observation buffer: joint states from several topics (prefixed names) and proprio normalization."""

import numpy as np
import pytest

from octo_ros.perception.observation import (
    JointStateError,
    JointStateSourceConfig,
    ObservationBuffer,
    ObservationConfig,
    StampOrderError,
    StatusKind,
    UnknownInputError,
)

MS = 1_000_000
ARM = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]
XS_NAMES = [*ARM, "gripper", "left_finger", "right_finger"]  # what each xs_sdk follower publishes
LEFT, RIGHT = "follower_left/joint_states", "follower_right/joint_states"  # relative, as config/bimanual.yaml names them
PROPRIO = [f"left_{j}" for j in ARM] + ["left_left_finger"] + [f"right_{j}" for j in ARM] + ["right_left_finger"]
CLOSE, OPEN = 0.0440, 0.0579  # ALOHA 2 follower finger position (m)


def make_cfg(**kw):
    d = {
        "rate_hz": 5.0,
        "window_size": 2,
        "max_joint_state_age_s": 0.25,
        "max_joint_lag_s": 0.1,
        "cameras": {"image_primary": {"topic": "/cam", "resolution": [16, 16]}},
        "joint_state": {"sources": [{"topic": LEFT, "prefix": "left_"}, {"topic": RIGHT, "prefix": "right_"}],
                        "joints": PROPRIO},
        "proprio_normalization": {"left_left_finger": [CLOSE, OPEN], "right_left_finger": [CLOSE, OPEN]},
    }
    d.update(kw)
    return ObservationConfig.from_dict(d)


def arm_state(base, finger):
    """xs_sdk joint_states positions: 6 joints base+0.01*i, gripper angle, fingers (m)."""
    return [base + 0.01 * i for i in range(6)] + [1.0, finger, -finger]


def image(buf, t_ns):
    buf.add_image("image_primary", t_ns, np.full((24, 32, 3), (t_ns // MS) % 256, np.uint8))


def test_config_sources_prefixes_and_normalization():
    cfg = make_cfg()
    assert cfg.joint_state_sources == (JointStateSourceConfig(LEFT, "left_"), JointStateSourceConfig(RIGHT, "right_"))
    assert cfg.joint_state_topic == LEFT  # the first source, for single-topic readers
    assert cfg.proprio_normalization == {"left_left_finger": (CLOSE, OPEN), "right_left_finger": (CLOSE, OPEN)}
    # the single-topic form is one source without prefix
    single = ObservationConfig.from_dict({"cameras": {"image_primary": {}},
                                          "joint_state": {"topic": "/js", "joints": ["a"]}})
    assert single.joint_state_sources == (JointStateSourceConfig("/js", ""),)
    assert ObservationConfig(cameras=make_cfg().cameras, joint_names=("a",),
                             joint_state_topic="/x").joint_state_sources == (JointStateSourceConfig("/x"),)


@pytest.mark.parametrize("change, match", [
    ({"joint_state": {"sources": [{"topic": LEFT, "prefix": "left_"}], "joints": PROPRIO}},
     r"\['right_waist'.*match no joint_state source prefix"),
    ({"joint_state": {"sources": [{"topic": LEFT, "prefix": "left_"}, {"topic": RIGHT, "prefix": "r_"}],
                      "joints": PROPRIO}}, "match no joint_state source prefix"),
    ({"joint_state": {"sources": [{"topic": LEFT, "prefix": "left_"}, {"topic": RIGHT, "prefix": "right_"},
                                  {"topic": "/x", "prefix": "x_"}], "joints": PROPRIO}},
     r"/x \(prefix 'x_'\) provides none"),
    ({"joint_state": {"sources": [{"topic": LEFT}, {"topic": LEFT}], "joints": ["a"]}}, "duplicate joint_state topics"),
    ({"joint_state": {"sources": [{"prefix": "a"}], "joints": ["ab"]}}, "empty joint_state topic"),
    ({"joint_state": {"sources": [], "joints": ["a"]}}, "sources is empty"),
    ({"joint_state": {"topic": LEFT, "sources": [{"topic": LEFT}], "joints": ["a"]}}, "not both"),
    ({"joint_state": {"sources": [{"topic": LEFT, "prefx": "l"}], "joints": ["a"]}}, "unknown keys"),
    ({"proprio_normalization": {"left_gripper": [0.0, 1.0]}}, "'left_gripper', which is not a proprio joint"),
    ({"proprio_normalization": {"left_left_finger": [0.05]}}, r"must be \[close, open\]"),
    ({"proprio_normalization": {"left_left_finger": [0.05, 0.05]}}, "must be finite and differ"),
    ({"proprio_normalization": {"left_left_finger": [0.0, float("nan")]}}, "must be finite and differ"),
])
def test_bad_configs_are_rejected(change, match):
    with pytest.raises(ValueError, match=match):
        make_cfg(**change)


def test_two_sources_with_equal_names_make_the_14d_proprio_normalized_exactly():
    buf = ObservationBuffer(make_cfg())
    buf.add_joint_state(995 * MS, XS_NAMES, arm_state(0.1, 0.0579), topic=LEFT)
    buf.add_joint_state(998 * MS, list(reversed(XS_NAMES)), list(reversed(arm_state(0.5, 0.0440))), topic=RIGHT)
    image(buf, 1000 * MS)
    w = buf.assemble(1010 * MS)
    assert w.ready, w
    assert w.proprio.shape == (2, 14) and w.proprio.dtype == np.float32
    expected = np.array([0.1 + 0.01 * i for i in range(6)] + [(0.0579 - CLOSE) / (OPEN - CLOSE)]
                        + [0.5 + 0.01 * i for i in range(6)] + [(0.0440 - CLOSE) / (OPEN - CLOSE)], np.float32)
    np.testing.assert_array_equal(w.proprio[-1], expected)
    assert w.proprio[-1, 6] == 1.0 and w.proprio[-1, 13] == 0.0  # open -> 1, close -> 0
    assert w.joint_state_stamps_by_topic[LEFT].tolist() == [995 * MS] * 2
    assert w.joint_state_stamps_by_topic[RIGHT].tolist() == [998 * MS] * 2
    assert w.joint_state_stamps_ns.tolist() == [995 * MS] * 2  # the oldest source's stamp


def test_normalization_is_affine_and_extrapolates():
    buf = ObservationBuffer(make_cfg(proprio_normalization={"left_left_finger": [0.01844, 0.05800],
                                                             "right_waist": [2.0, -2.0]}))
    x = 0.03
    buf.add_joint_state(1000 * MS, XS_NAMES, arm_state(0.0, x), topic=LEFT)
    buf.add_joint_state(1000 * MS, XS_NAMES, arm_state(1.0, 0.07), topic=RIGHT)
    image(buf, 1000 * MS)
    p = buf.assemble(1000 * MS).proprio[-1]
    assert p[6] == np.float32((x - 0.01844) / (0.05800 - 0.01844))
    assert p[7] == np.float32((1.0 - 2.0) / (-2.0 - 2.0))  # open < close is fine (a flipped axis)
    assert p[13] == np.float32(0.07)  # not configured: raw metres, beyond the open value is not clipped


def test_each_source_is_taken_at_or_before_the_image_time():
    buf = ObservationBuffer(make_cfg(proprio_normalization={}))
    for t, v in [(960, 1.0), (1000, 2.0), (1004, 3.0)]:
        buf.add_joint_state(t * MS, XS_NAMES, arm_state(v, 0.05), topic=LEFT)
    for t, v in [(990, 5.0), (999, 6.0), (1001, 7.0)]:
        buf.add_joint_state(t * MS, XS_NAMES, arm_state(v, 0.05), topic=RIGHT)
    image(buf, 1000 * MS)
    w = buf.assemble(1010 * MS)
    assert w.proprio[-1, 0] == np.float32(2.0) and w.proprio[-1, 7] == np.float32(6.0)
    assert w.joint_state_stamps_by_topic[LEFT][-1] == 1000 * MS
    assert w.joint_state_stamps_by_topic[RIGHT][-1] == 999 * MS
    assert w.joint_state_stamps_ns[-1] == 999 * MS


def test_one_source_without_state_before_the_image_waits_and_lag_is_per_source():
    buf = ObservationBuffer(make_cfg())
    buf.add_joint_state(1000 * MS, XS_NAMES, arm_state(0, 0.05), topic=LEFT)
    buf.add_joint_state(1005 * MS, XS_NAMES, arm_state(0, 0.05), topic=RIGHT)  # only after the image
    image(buf, 1000 * MS)
    st = buf.assemble(1010 * MS)
    assert st.kind is StatusKind.WAITING and "at or before" in st.reason and st.stream == f"joint_state ({RIGHT})"

    buf = ObservationBuffer(make_cfg())
    buf.add_joint_state(1000 * MS, XS_NAMES, arm_state(0, 0.05), topic=LEFT)
    buf.add_joint_state(850 * MS, XS_NAMES, arm_state(0, 0.05), topic=RIGHT)  # 150 ms before the image
    buf.add_joint_state(1005 * MS, XS_NAMES, arm_state(0, 0.05), topic=RIGHT)
    image(buf, 1000 * MS)
    st = buf.assemble(1010 * MS)
    assert st.kind is StatusKind.STALE and "older than the image" in st.reason and RIGHT in st.reason
    assert st.stream == f"joint_state ({RIGHT})"


def test_one_stale_source_is_named_and_restarts_the_window():
    buf = ObservationBuffer(make_cfg())
    for k in range(4):
        t = (1000 + 200 * k) * MS
        buf.add_joint_state(t, XS_NAMES, arm_state(0, 0.05), topic=LEFT)
        if k < 2:  # the right driver stops after 1.2 s
            buf.add_joint_state(t, XS_NAMES, arm_state(0, 0.05), topic=RIGHT)
        image(buf, t)
        r = buf.assemble(t + 5 * MS)
        if k < 2:
            assert r.ready, r
    assert r.kind is StatusKind.STALE and r.stream == f"joint_state ({RIGHT})"
    assert f"newest joint state on joint_state ({RIGHT}) is 405.0 ms old" in r.reason
    assert buf.num_steps == 0
    st = buf.assemble(1610 * MS)
    assert st.kind is StatusKind.STALE and RIGHT in st.reason and LEFT not in st.reason
    # both fresh again: a new, padded window
    buf.add_joint_state(1800 * MS, XS_NAMES, arm_state(0, 0.05), topic=LEFT)
    buf.add_joint_state(1800 * MS, XS_NAMES, arm_state(0, 0.05), topic=RIGHT)
    image(buf, 1800 * MS)
    w = buf.assemble(1805 * MS)
    assert w.ready and w.timestep_pad_mask.tolist() == [False, True]


def test_waits_until_every_source_has_sent():
    buf = ObservationBuffer(make_cfg())
    image(buf, 1000 * MS)
    buf.add_joint_state(1000 * MS, XS_NAMES, arm_state(0, 0.05), topic=LEFT)
    st = buf.assemble(1000 * MS)
    assert st.kind is StatusKind.WAITING and st.stream == f"joint_state ({RIGHT})" and "no joint state" in st.reason


def test_bad_messages_name_their_topic_and_sources_are_independent():
    buf = ObservationBuffer(make_cfg())
    with pytest.raises(JointStateError, match=r"missing joints \['right_left_finger'\] \(prefix 'right_'") as e:
        buf.add_joint_state(1, ARM + ["gripper"], [0.0] * 7, topic=RIGHT)
    assert RIGHT in str(e.value)
    with pytest.raises(JointStateError, match="non-finite") as e:
        buf.add_joint_state(2, XS_NAMES, arm_state(float("nan"), 0.05), topic=LEFT)
    assert LEFT in str(e.value)
    with pytest.raises(UnknownInputError, match="/follower_middle/joint_states"):
        buf.add_joint_state(3, XS_NAMES, arm_state(0, 0.05), topic="/follower_middle/joint_states")
    with pytest.raises(UnknownInputError, match="pass topic="):
        buf.add_joint_state(3, XS_NAMES, arm_state(0, 0.05))
    # stamp order is per source: equal stamps on the two topics are fine
    buf.add_joint_state(10, XS_NAMES, arm_state(0, 0.05), topic=LEFT)
    buf.add_joint_state(10, XS_NAMES, arm_state(0, 0.05), topic=RIGHT)
    with pytest.raises(StampOrderError) as e:
        buf.add_joint_state(10, XS_NAMES, arm_state(0, 0.05), topic=RIGHT)
    assert RIGHT in str(e.value)
    assert buf.drop_counts[f"joint_state ({RIGHT})"] == 2 and buf.drop_counts[f"joint_state ({LEFT})"] == 1


def test_unprefixed_sources_provide_disjoint_joints():
    """E.g. an arm driver and a separate gripper driver: the union of the sources must hold every joint."""
    cfg = make_cfg(joint_state={"sources": [{"topic": "/arm"}, {"topic": "/gripper"}], "joints": ["j1", "j2", "finger"]},
                   proprio_normalization={"finger": [0.0, 0.1]})
    buf = ObservationBuffer(cfg)
    buf.add_joint_state(1000 * MS, ["j2", "j1"], [2.0, 1.0], topic="/arm")
    with pytest.raises(JointStateError, match="none of the proprio joints") as e:
        buf.add_joint_state(1000 * MS, ["other"], [0.0], topic="/gripper")
    assert "/gripper" in str(e.value)
    buf.add_joint_state(1001 * MS, ["finger"], [0.05], topic="/gripper")
    image(buf, 1002 * MS)
    w = buf.assemble(1002 * MS)
    np.testing.assert_array_equal(w.proprio[-1], np.array([1.0, 2.0, 0.5], np.float32))
    # a joint that no source's state carries: waiting, naming the joint
    buf2 = ObservationBuffer(cfg)
    buf2.add_joint_state(1000 * MS, ["j1"], [1.0], topic="/arm")
    buf2.add_joint_state(1000 * MS, ["finger"], [0.05], topic="/gripper")
    image(buf2, 1000 * MS)
    st = buf2.assemble(1000 * MS)
    assert st.kind is StatusKind.WAITING and "['j2']" in st.reason


def test_bimanual_configs_match_the_sim():
    """config/bimanual.yaml: ALOHA 2 follower constants; config/bimanual_sim.yaml: the sim's own
    finger position constants, so the buffer's gripper equals the sim's normalized qpos."""
    from octo_ros.ros.graph import describe

    real = {s.name: s.parameters for s in describe("bimanual")}["observation_buffer"]
    assert real["joint_state_topics"] == [LEFT, RIGHT] and real["joint_state_prefixes"] == ["left_", "right_"]
    assert real["proprio_joints"] == PROPRIO
    assert real["proprio_normalization"] == {"left_left_finger": [0.0440, 0.0579], "right_left_finger": [0.0440, 0.0579]}
    sim = {s.name: s.parameters for s in describe("bimanual", sim=True)}
    aloha = sim["aloha_sim"]
    position = [aloha["gripper_position_close"], aloha["gripper_position_open"]]
    assert sim["observation_buffer"]["proprio_normalization"] == {"left_left_finger": position,
                                                                   "right_left_finger": position}

    pytest.importorskip("gym_aloha")
    from octo_ros.robots.bimanual.sim import ARMS, AlohaSim, AlohaSimConfig

    sim_model = AlohaSim(AlohaSimConfig(
        gripper_joint_open=aloha["gripper_joint_open"], gripper_joint_close=aloha["gripper_joint_close"],
        gripper_position_open=aloha["gripper_position_open"], gripper_position_close=aloha["gripper_position_close"]))
    sim_model.command_joint_single("left", "gripper", aloha["gripper_joint_open"])
    sim_model.step(50)
    params = sim["observation_buffer"]
    buf = ObservationBuffer(ObservationConfig.from_dict({
        "cameras": {"image_primary": {"resolution": [16, 16]}},
        "joint_state": {"sources": [{"topic": t, "prefix": p}
                                    for t, p in zip(params["joint_state_topics"], params["joint_state_prefixes"])],
                        "joints": params["proprio_joints"]},
        "proprio_normalization": params["proprio_normalization"]}))
    for arm, topic in zip(ARMS, (LEFT, RIGHT)):
        js = sim_model.joint_states(arm)
        assert list(js.name)[7] == "left_finger" and 0.02 < js.position[7] < 0.06  # metres
        buf.add_joint_state(1000 * MS, js.name, js.position, topic=topic)
    image(buf, 1000 * MS)
    proprio = buf.assemble(1000 * MS).proprio[-1]
    np.testing.assert_allclose(proprio, sim_model.qpos14(), atol=1e-6)
    assert proprio[6] > 0.8 > 0.2 > proprio[13]  # left opened, right at the start pose
