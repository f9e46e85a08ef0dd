"""A fine-tuned checkpoint (`octo-ros finetune` output, both layouts) driving the real policy node:
cameras + joint states -> observation_buffer -> policy -> action chunks over DDS."""
import numpy as np
import pytest
from support.finetune_data import make_lerobot_dataset
from support.streams import SensorStreams

from octo_ros.finetune import FinetuneConfig, finetune
from octo_ros.model.testing import make_untrained_checkpoint
from octo_ros.ros.messages import chunk_from_msg
from octo_ros_msgs.msg import ActionChunk
from octo_ros_msgs.srv import SetInstruction

NAMES = ["a0", "a1", "a2", "a3", "a4", "a5", "gripper"]


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft_node")
    data = make_lerobot_dataset(root / "data", episodes=3, steps=12)
    ck = make_untrained_checkpoint(root / "ck", cameras=("primary",))
    out = root / "out"
    # statistics under a dataset name, as the robot configs' dataset_statistics_key expects
    finetune(FinetuneConfig(checkpoint=str(ck), datasets=[str(data)], out=str(out), batch_size=4, steps=3,
                            val_batches=1, progress=False, threads=1, dataset_key="recorded_demos"))
    return out


@pytest.mark.parametrize("layout", ["official", "native"])
def test_policy_node_runs_the_finetuned_checkpoint(ros, finetuned, layout):
    checkpoint = finetuned if layout == "official" else finetuned / "native"
    assert (checkpoint / "spiece.model").is_file()  # the tokenizer travels with the output
    ros.spawn_module("observation_buffer", "octo_ros.ros.nodes.observation_buffer", params={
        "camera_inputs": ["image_primary"], "cameras.image_primary.topic": "/cam/image_raw",
        "cameras.image_primary.height": 64, "cameras.image_primary.width": 64,
        "joint_state_topic": "/joint_states", "proprio_joints": ["j1", "j2", "j3"], "rate_hz": 5.0,
        "max_image_age_s": 0.5})
    ros.spawn_module("policy", "octo_ros.ros.nodes.policy", params={
        "checkpoint": str(checkpoint), "action_dimension_names": NAMES, "step_period": 0.2,
        "dataset_statistics_key": "recorded_demos"})
    node = ros.node("finetune_node_test")
    SensorStreams(node)
    chunks = []
    node.create_subscription(ActionChunk, "/action_chunk", chunks.append, 10)
    client = node.create_client(SetInstruction, "/policy/set_instruction")
    assert ros.call(client, SetInstruction.Request(instruction="move to the grey level"), timeout=90).success
    ros.wait_for(lambda: len(chunks) >= 2, 60, "action chunks from the fine-tuned checkpoint")
    chunk = chunk_from_msg(chunks[-1])
    assert chunk.actions.shape == (4, 7) and np.isfinite(chunk.actions).all()
    assert chunk.dimension_names == tuple(NAMES)
