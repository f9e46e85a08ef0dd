"""Observation buffer: slop matching, joint state at-or-before, pad mask, staleness, drops."""

from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from octo_ros.inference.runtime import model_batch
from octo_ros.perception.image_codec import ImageLayoutError, encode_image, resize_like_octo
from octo_ros.perception.observation import (
    JointStateError,
    ObservationBuffer,
    ObservationConfig,
    ObservationStatus,
    ObservationWindow,
    StampOrderError,
    StatusKind,
    UnknownInputError,
)

MS = 1_000_000
JOINTS = ["j1", "j2", "gripper"]


def make_cfg(**kw):
    d = {
        "rate_hz": 5.0,
        "window_size": 2,
        "slop_s": 0.02,
        "max_image_age_s": 0.5,
        "max_joint_state_age_s": 0.25,
        "max_joint_lag_s": 0.1,
        "cameras": {"image_primary": {"topic": "/cam"}, "image_wrist": {"topic": "/wrist"}},
        "joint_state": {"topic": "/joint_states", "joints": JOINTS},
    }
    d.update(kw)
    return ObservationConfig.from_dict(d)


def frame(value, h=24, w=32):
    return np.full((h, w, 3), value, np.uint8)


def feed(buf, t_ns, value=None, wrist_offset=0, joints=True):
    v = (t_ns // MS) % 256 if value is None else value
    buf.add_image("image_primary", t_ns, frame(v))
    buf.add_image("image_wrist", t_ns + wrist_offset, frame(255 - v, 20, 20))
    if joints:
        buf.add_joint_state(t_ns - 3 * MS, ["gripper", "j2", "j1", "other"], [t_ns / 1e9, 2.0, 1.0, 9.0])


# ----------------------------------------------------------------- config


def test_config_defaults_and_yaml(tmp_path):
    p = tmp_path / "obs.yaml"
    p.write_text(yaml.safe_dump({"observation": {"cameras": {"image_primary": {"topic": "/a"},
                                                              "image_wrist": {"topic": "/b"}},
                                                  "joint_state": {"joints": ["x"]}, "slop_s": 0.03}}))
    cfg = ObservationConfig.from_yaml(str(p))
    prim, wrist = cfg.cameras
    assert (prim.height, prim.width, prim.average_crop) == (256, 256, True)
    assert (wrist.height, wrist.width, wrist.average_crop) == (128, 128, False)
    assert cfg.slop_ns == 30 * MS and cfg.joint_names == ("x",) and cfg.window_size == 2
    assert cfg.period_ns == 200 * MS


@pytest.mark.parametrize("bad", [
    {"cameras": {}},
    {"cameras": {"primary": {}}},
    {"cameras": {"image_primary": {"colour": 1}}},
    {"cameras": {"image_primary": {}}, "window_size": 0},
    {"cameras": {"image_primary": {}}, "bogus": 1},
    {"cameras": {"image_primary": {}}, "joint_state": {"joints": ["a", "a"]}},
])
def test_config_rejects_bad_maps(bad):
    with pytest.raises(ValueError):
        ObservationConfig.from_dict(bad)


# ----------------------------------------------------------------- window and pad mask


def test_startup_pad_mask_and_padding_copies_first_step():
    buf = ObservationBuffer(make_cfg(window_size=3))
    feed(buf, 1000 * MS)
    w = buf.assemble(1010 * MS)
    assert isinstance(w, ObservationWindow) and w.ready
    assert w.timestep_pad_mask.tolist() == [False, False, True]
    assert w.images["image_primary"].shape == (3, 256, 256, 3) and w.images["image_primary"].dtype == np.uint8
    assert w.images["image_wrist"].shape == (3, 128, 128, 3)
    assert w.proprio.shape == (3, 3) and w.proprio.dtype == np.float32
    assert w.stamps_ns.dtype == np.int64 and w.stamps_ns.tolist() == [1000 * MS] * 3
    for k in ("image_primary", "image_wrist"):
        assert np.array_equal(w.images[k][0], w.images[k][2])
    np.testing.assert_allclose(w.proprio[2], [1.0, 2.0, 1.0], rtol=1e-6)  # reordered to JOINTS

    feed(buf, 1200 * MS)
    w2 = buf.assemble(1210 * MS)
    assert w2.timestep_pad_mask.tolist() == [False, True, True]
    assert w2.stamps_ns.tolist() == [1000 * MS, 1000 * MS, 1200 * MS]
    feed(buf, 1400 * MS)
    w3 = buf.assemble(1410 * MS)
    assert w3.timestep_pad_mask.tolist() == [True, True, True]
    assert w3.stamps_ns.tolist() == [1000 * MS, 1200 * MS, 1400 * MS]
    feed(buf, 1600 * MS)
    w4 = buf.assemble(1610 * MS)
    assert w4.stamps_ns.tolist() == [1200 * MS, 1400 * MS, 1600 * MS] and w4.num_real_steps == 3


def test_images_are_resized_like_octo():
    buf = ObservationBuffer(make_cfg())
    rng = np.random.default_rng(0)
    prim = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    wrist = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    buf.add_image("image_primary", 100 * MS, prim)
    buf.add_image("image_wrist", 101 * MS, wrist)
    buf.add_joint_state(99 * MS, JOINTS, [0, 0, 0])
    w = buf.assemble(110 * MS)
    np.testing.assert_array_equal(w.images["image_primary"][1], resize_like_octo(prim, (256, 256), True))
    np.testing.assert_array_equal(w.images["image_wrist"][1], resize_like_octo(wrist, (128, 128), False))
    obs = model_batch(w, w.images, max_window=2)
    assert obs["image_primary"].shape == (1, 2, 256, 256, 3) and obs["timestep_pad_mask"].tolist() == [[False, True]]
    assert "proprio" not in obs and model_batch(w, [*w.images, "proprio"], max_window=2)["proprio"].shape == (1, 2, 3)


def test_reset_restarts_pad_mask_and_clears_streams():
    buf = ObservationBuffer(make_cfg())
    feed(buf, 1000 * MS)
    buf.assemble(1000 * MS)
    feed(buf, 1200 * MS)
    assert buf.assemble(1200 * MS).timestep_pad_mask.tolist() == [True, True]
    buf.reset()
    st = buf.assemble(1210 * MS)
    assert isinstance(st, ObservationStatus) and st.kind is StatusKind.WAITING and not st.ready
    feed(buf, 900 * MS)  # older than before the reset: accepted (last stamps forgotten)
    w = buf.assemble(905 * MS)
    assert w.timestep_pad_mask.tolist() == [False, True] and w.stamps_ns.tolist() == [900 * MS] * 2


# ----------------------------------------------------------------- synchronisation


def test_slop_matching_picks_newest_set_within_slop():
    buf = ObservationBuffer(make_cfg(slop_s=0.01))
    buf.add_joint_state(0, JOINTS, [0, 0, 0])
    buf.add_image("image_primary", 100 * MS, frame(1))
    buf.add_image("image_wrist", 105 * MS, frame(2))   # within 10 ms of primary@100
    buf.add_image("image_primary", 133 * MS, frame(3))  # wrist nearest is 105 / 150: 28/17 ms -> no match
    buf.add_image("image_wrist", 150 * MS, frame(4))
    w = buf.assemble(150 * MS)
    assert w.stamps_ns.tolist()[-1] == 100 * MS
    assert w.image_stamps_ns["image_wrist"].tolist()[-1] == 105 * MS
    assert int(w.images["image_primary"][1].mean()) == 1


def test_unsynchronized_cameras_reported():
    buf = ObservationBuffer(make_cfg(slop_s=0.005))
    buf.add_joint_state(0, JOINTS, [0, 0, 0])
    buf.add_image("image_primary", 100 * MS, frame(1))
    buf.add_image("image_wrist", 140 * MS, frame(2))
    st = buf.assemble(150 * MS)
    assert st.kind is StatusKind.UNSYNCHRONIZED and "slop" in st.reason and "image_wrist=140000000" in st.reason


def test_no_new_set_is_waiting_and_window_does_not_advance():
    buf = ObservationBuffer(make_cfg())
    feed(buf, 1000 * MS)
    assert buf.assemble(1000 * MS).ready
    st = buf.assemble(1050 * MS)
    assert st.kind is StatusKind.WAITING and "newer than the last step" in st.reason
    feed(buf, 1033 * MS)  # too close to the last step (min interval = half period = 100 ms)
    assert buf.assemble(1060 * MS).kind is StatusKind.WAITING
    feed(buf, 1200 * MS)
    w = buf.assemble(1200 * MS)
    assert w.stamps_ns.tolist() == [1000 * MS, 1200 * MS] and buf.num_steps == 2


def test_joint_state_at_or_before_image_time():
    buf = ObservationBuffer(make_cfg())
    buf.add_joint_state(990 * MS, JOINTS, [1, 1, 1])
    buf.add_joint_state(1000 * MS, JOINTS, [2, 2, 2])  # exactly at image time: used
    buf.add_joint_state(1001 * MS, JOINTS, [3, 3, 3])  # after: never used
    buf.add_image("image_primary", 1000 * MS, frame(0))
    buf.add_image("image_wrist", 1000 * MS, frame(0))
    w = buf.assemble(1010 * MS)
    assert w.proprio[-1].tolist() == [2, 2, 2] and w.joint_state_stamps_ns[-1] == 1000 * MS


def test_no_joint_state_before_image_is_waiting_and_lag_is_stale():
    buf = ObservationBuffer(make_cfg())
    buf.add_image("image_primary", 1000 * MS, frame(0))
    buf.add_image("image_wrist", 1000 * MS, frame(0))
    buf.add_joint_state(1005 * MS, JOINTS, [0, 0, 0])
    st = buf.assemble(1010 * MS)
    assert st.kind is StatusKind.WAITING and "at or before" in st.reason and "/joint_states" in st.stream

    buf2 = ObservationBuffer(make_cfg())
    buf2.add_joint_state(800 * MS, JOINTS, [0, 0, 0])  # 200 ms before the image > 100 ms lag
    buf2.add_joint_state(1005 * MS, JOINTS, [0, 0, 0])
    buf2.add_image("image_primary", 1000 * MS, frame(0))
    buf2.add_image("image_wrist", 1000 * MS, frame(0))
    st2 = buf2.assemble(1010 * MS)
    assert st2.kind is StatusKind.STALE and "older than the image" in st2.reason


def test_no_joints_configured_gives_empty_proprio():
    buf = ObservationBuffer(make_cfg(joint_state={"joints": []}))
    feed(buf, 500 * MS, joints=False)
    w = buf.assemble(500 * MS)
    assert w.proprio.shape == (2, 0) and w.joint_state_stamps_ns.tolist() == [-1, -1]


# ----------------------------------------------------------------- freshness


def test_waiting_before_any_data_names_stream():
    buf = ObservationBuffer(make_cfg())
    st = buf.assemble(0)
    assert st.kind is StatusKind.WAITING and "image_primary (/cam)" in st.reason
    buf.add_image("image_primary", 0, frame(0))
    assert "image_wrist (/wrist)" in buf.assemble(0).reason
    buf.add_image("image_wrist", 0, frame(0))
    assert "joint state" in buf.assemble(0).reason


def test_stale_camera_then_recovery_restarts_window():
    buf = ObservationBuffer(make_cfg())
    feed(buf, 1000 * MS)
    buf.assemble(1000 * MS)
    feed(buf, 1200 * MS)
    assert buf.assemble(1200 * MS).timestep_pad_mask.tolist() == [True, True]
    # wrist camera stops; primary and joints keep coming
    buf.add_image("image_primary", 1400 * MS, frame(1))
    buf.add_joint_state(1750 * MS, JOINTS, [0, 0, 0])
    st = buf.assemble(1760 * MS)
    assert st.kind is StatusKind.STALE and st.stream == "image_wrist (/wrist)"
    assert "image_wrist (/wrist)" in st.reason and "560.0 ms old" in st.reason
    feed(buf, 1800 * MS)
    w = buf.assemble(1800 * MS)
    assert w.ready and w.timestep_pad_mask.tolist() == [False, True]  # history restarted
    assert w.stamps_ns.tolist() == [1800 * MS] * 2


def test_stale_joint_state():
    buf = ObservationBuffer(make_cfg())
    feed(buf, 1000 * MS)
    buf.add_image("image_primary", 1300 * MS, frame(0))
    buf.add_image("image_wrist", 1300 * MS, frame(0))
    st = buf.assemble(1300 * MS)  # newest joint state at 997 ms: 303 ms > 250 ms
    assert st.kind is StatusKind.STALE and "joint state" in st.reason and st.stream == "joint_state (/joint_states)"


def test_long_gap_between_steps_restarts_window():
    buf = ObservationBuffer(make_cfg(max_step_gap_s=0.5))
    feed(buf, 1000 * MS)
    buf.assemble(1000 * MS)
    feed(buf, 1700 * MS)  # 700 ms after the last step: history void
    w = buf.assemble(1700 * MS)
    assert w.timestep_pad_mask.tolist() == [False, True] and w.stamps_ns.tolist() == [1700 * MS] * 2


# ----------------------------------------------------------------- drops


def test_out_of_order_and_duplicate_stamps_dropped_buffer_continues():
    buf = ObservationBuffer(make_cfg())
    feed(buf, 1000 * MS)
    with pytest.raises(StampOrderError) as e:
        buf.add_image("image_primary", 1000 * MS, frame(9))
    assert e.value.duplicate and "duplicate" in str(e.value) and "image_primary (/cam)" in str(e.value)
    with pytest.raises(StampOrderError) as e2:
        buf.add_image("image_primary", 900 * MS, frame(9))
    assert not e2.value.duplicate and "out-of-order" in str(e2.value)
    with pytest.raises(StampOrderError, match="joint_state"):
        buf.add_joint_state(500 * MS, JOINTS, [0, 0, 0])
    assert buf.drop_counts == {"image_primary (/cam)": 2, "joint_state (/joint_states)": 1}
    w = buf.assemble(1000 * MS)
    assert int(w.images["image_primary"][-1].mean()) == 1000 % 256  # the dropped frame (9) is not used


def test_bad_joint_states_rejected():
    buf = ObservationBuffer(make_cfg())
    with pytest.raises(JointStateError, match=r"missing joints \['gripper'\]") as e:
        buf.add_joint_state(1, ["j1", "j2"], [0, 0])
    assert "/joint_states" in str(e.value)
    with pytest.raises(JointStateError, match="3 names but 2 positions"):
        buf.add_joint_state(2, JOINTS, [0, 0])
    with pytest.raises(JointStateError, match="non-finite"):
        buf.add_joint_state(3, JOINTS, [0, float("nan"), 0])
    buf.add_joint_state(4, JOINTS, [1, 2, 3])  # still accepted afterwards (bad stamps not recorded)
    assert buf.drop_counts["joint_state (/joint_states)"] == 3


def test_bad_images_rejected():
    buf = ObservationBuffer(make_cfg())
    with pytest.raises(UnknownInputError, match="image_side"):
        buf.add_image("image_side", 1, frame(0))
    with pytest.raises(ImageLayoutError, match="image_primary"):
        buf.add_image("image_primary", 1, np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageLayoutError):
        buf.add_image("image_primary", 2, np.zeros((0, 4, 3), np.uint8))
    buf.add_image("image_primary", 3, frame(0))


def test_message_adapters():
    buf = ObservationBuffer(make_cfg())

    def header(t):
        return SimpleNamespace(stamp=SimpleNamespace(sec=t // 10**9, nanosec=t % 10**9))

    rgb = np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    f = encode_image(rgb, "bgr8", row_padding=4)
    msg = SimpleNamespace(header=header(2_000_000_123), encoding=f.encoding, height=f.height, width=f.width,
                          step=f.step, is_bigendian=0, data=f.data)
    buf.add_image_msg("image_primary", msg)
    bad = SimpleNamespace(**{**vars(msg), "header": header(2_100_000_000), "data": f.data[:-1]})
    with pytest.raises(ImageLayoutError) as e:
        buf.add_image_msg("image_primary", bad)
    assert str(e.value).startswith("[image_primary (/cam)]") and "truncated" in str(e.value)
    with pytest.raises(StampOrderError):  # checked before decoding
        buf.add_image_msg("image_primary", msg)
    buf.add_image_msg("image_wrist", SimpleNamespace(**{**vars(msg), "header": header(2_000_000_200)}))
    buf.add_joint_state_msg(SimpleNamespace(header=header(1_999_000_000), name=JOINTS, position=[1.0, 2.0, 3.0]))
    w = buf.assemble(2_010_000_000)
    assert w.stamps_ns[-1] == 2_000_000_123 and w.proprio[-1].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(w.images["image_primary"][-1], resize_like_octo(rgb, (256, 256), True))
