"""The observation buffer as the graph starts it: image sizes from the checkpoint it serves."""
import time

import pytest
from support.streams import SensorStreams

from octo_ros.inference.checkpoint_info import checkpoint_image_sizes
from octo_ros.model.policy import convert_checkpoint
from octo_ros.model.testing import make_untrained_checkpoint
from octo_ros.robots.interbotix.kinematics import ARM_JOINTS
from octo_ros.ros.graph import describe
from octo_ros.ros.launcher import node_command, write_params_file
from octo_ros_msgs.msg import ObservationWindow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The demo's kind of checkpoint: a 64 px primary camera and a 32 px wrist camera."""
    return make_untrained_checkpoint(tmp_path_factory.mktemp("sizes"), cameras=("primary", "wrist"))


def test_image_sizes_of_official_and_native_checkpoints(checkpoint, tmp_path):
    sizes = checkpoint_image_sizes(checkpoint)
    assert sizes["image_primary"] == (64, 64) and set(sizes) == {"image_primary", "image_wrist"}
    assert checkpoint_image_sizes(convert_checkpoint(checkpoint, tmp_path / "native", progress=False)) == sizes


def _start_buffer(ros, tmp_path, arguments):
    (spec,) = [s for s in describe("widowx", sim=True, arguments=arguments) if s.name == "observation_buffer"]
    return ros.spawn("observation_buffer", node_command(spec, write_params_file(spec, tmp_path))[1:])


def test_buffer_takes_each_camera_size_from_the_checkpoint(ros, tmp_path, checkpoint):
    _start_buffer(ros, tmp_path, {"checkpoint": str(checkpoint)})
    node = ros.node("sizes_test")
    windows = []
    node.create_subscription(ObservationWindow, "/observation_window", windows.append, 10)
    SensorStreams(node, camera_topic="/camera/image_raw", joint_topic="/wx250s/joint_states", joints=ARM_JOINTS,
                  size=(240, 320))
    ros.wait_for(lambda: windows, 60, "an observation window")
    frame = windows[-1].cameras[0].frames[0]
    assert (frame.height, frame.width) == checkpoint_image_sizes(checkpoint)["image_primary"]


def test_buffer_refuses_a_size_the_checkpoint_cannot_take(ros, tmp_path, checkpoint):
    proc = _start_buffer(ros, tmp_path, {"checkpoint": str(checkpoint),
                                         "observation_buffer.cameras.image_primary.height": "256",
                                         "observation_buffer.cameras.image_primary.width": "256"})
    ros.wait_for(lambda: not proc.alive(), 60, "the buffer to refuse its parameters")
    assert "cameras.image_primary is 256x256 but the checkpoint takes 64x64 (height x width)" in proc.output()


def test_a_flapping_camera_is_summarized_not_logged_at_every_change(ros, tmp_path, checkpoint):
    proc = _start_buffer(ros, tmp_path, {"checkpoint": str(checkpoint)})
    node = ros.node("flap_test")
    windows = []
    node.create_subscription(ObservationWindow, "/observation_window", windows.append, 10)
    streams = SensorStreams(node, camera_topic="/camera/image_raw", joint_topic="/wx250s/joint_states",
                            joints=ARM_JOINTS, size=(240, 320))
    ros.wait_for(lambda: windows, 60, "an observation window")

    def flap():  # the camera pauses longer than max_image_age_s (0.5 s), then comes back, ...
        streams.paused.clear() if streams.paused.is_set() else streams.paused.set()

    node.create_timer(0.8, flap)
    time.sleep(12.0)
    lines = proc.output().splitlines()
    changes = [line for line in lines if "observation stale" in line or "fresh again" in line]
    summaries = [line for line in lines if "went stale" in line]
    assert len(changes) <= 3, "\n".join(changes)
    assert summaries and "image_primary" in summaries[0], "\n".join(lines[-20:])
