"""What the observation buffer node reports, without ROS (octo_ros.perception.buffer_status): camera
sizes against the checkpoint's, normalization only for proprio joints, the start-up line, and the
diagnostics and stale/fresh lines of a real buffer's ticks."""
import pytest

from octo_ros.perception.buffer_status import BufferStatus, camera_size, check_normalized_joints, describe
from octo_ros.perception.observation import (
    CameraInputConfig,
    JointStateSourceConfig,
    ObservationBuffer,
    ObservationConfig,
    ObservationStatus,
    StatusKind,
)


def test_camera_sizes_come_from_the_parameters_or_the_checkpoint():
    assert camera_size("image_primary", None, None, None) == {}
    assert camera_size("image_primary", None, None, (128, 128)) == {"height": 128, "width": 128}
    assert camera_size("image_wrist", 64, 80, None) == {"height": 64, "width": 80}
    with pytest.raises(ValueError, match="set both cameras.image_wrist.height and cameras.image_wrist.width"):
        camera_size("image_wrist", 64, None, None)
    with pytest.raises(ValueError, match=r"cameras.image_primary is 64x64 but the checkpoint takes 256x256"):
        camera_size("image_primary", 64, 64, (256, 256))


def test_normalization_of_a_joint_not_in_the_proprio_is_refused():
    check_normalized_joints(["gripper"], ["j1", "gripper"])
    with pytest.raises(ValueError, match=r"\['proprio_normalization.grip'\]: not joints of proprio_joints"):
        check_normalized_joints(["grip", "gripper"], ["j1", "gripper"])


def test_start_up_line_and_diagnostics_follow_the_ticks():
    config = ObservationConfig(cameras=(CameraInputConfig("image_primary", "/cam"),), joint_names=("j1",),
                               joint_state_sources=(JointStateSourceConfig("/joint_states", ""),))
    line = describe(config)
    assert "image_primary <- /cam" in line and "joint states from /joint_states" in line and "(proprio: j1)" in line
    status = BufferStatus()
    assert status.diagnostics({})[:2] == ("warn", "waiting for data")
    buffer = ObservationBuffer(config)
    result = buffer.assemble(10**9)  # nothing received yet: no window
    assert isinstance(result, ObservationStatus)
    status.tick(10**9, result)
    assert status.diagnostics({"/cam": 2}) == ("warn", str(result), {"windows_published": 0, "dropped /cam": 2})
    stale = ObservationStatus(StatusKind.STALE, "image_primary 0.6 s old", "image_primary")
    lines = status.tick(2 * 10**9, stale)
    assert lines == [("warning", "observation stale, publishing nothing: image_primary 0.6 s old")]
    assert status.diagnostics({})[:2] == ("error", "stale: image_primary 0.6 s old")
