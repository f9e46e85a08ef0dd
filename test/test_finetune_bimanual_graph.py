"""A new-head fine-tune (14-D L1 head + proprio tokenizer, from a 7-D diffusion checkpoint) runs
in the simulated bimanual graph: `octo-ros launch bimanual --sim` with the fine-tuned checkpoint
(the buffer sizes the camera and builds the 14-D proprio from the checkpoint and bimanual.yaml)
publishes 14-D chunks of the new horizon in the bimanual layout."""
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from support.finetune_data import make_lerobot_dataset
from support.ros_harness import REPO_ROOT

from octo_ros.finetune import FinetuneConfig, finetune
from octo_ros.model.testing import make_untrained_checkpoint
from octo_ros.ros.messages import chunk_from_msg
from octo_ros_msgs.msg import ActionChunk
from octo_ros_msgs.srv import SetInstruction

KEY = "aloha_sim_cube_scripted_dataset"  # config/bimanual.yaml's dataset_statistics_key
JOINTS = [f"{side}_{j}" for side in ("left", "right")
          for j in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "left_finger")]


@pytest.fixture(scope="module")
def bimanual_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft_bimanual")
    data = make_lerobot_dataset(root / "aloha", episodes=3, steps=12, action_dim=14, joints=JOINTS)
    ck = make_untrained_checkpoint(root / "ck", cameras=("primary", "wrist"))  # 7-D diffusion
    before = torch.get_num_threads()
    try:
        finetune(FinetuneConfig(checkpoint=str(ck), datasets=[str(data)], out=str(root / "out"), head="l1",
                                action_dim=14, action_horizon=10, proprio=True, drop_cameras=["wrist"],
                                dataset_key=KEY, batch_size=4, steps=3, val_batches=1, progress=False, threads=1))
    finally:
        torch.set_num_threads(before)
    return root / "out"


@pytest.mark.timeout(600)  # recording, export, fine-tuning and a five-process graph with MuJoCo: minutes on a shared box
def test_bimanual_graph_runs_the_new_head_checkpoint(ros, bimanual_checkpoint):
    launcher = subprocess.Popen(
        [sys.executable, "-m", "octo_ros.cli", "launch", "bimanual", "--sim", f"checkpoint:={bimanual_checkpoint}",
         "dry_run:=true", f"dataset_statistics_key:={KEY}"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = ros.node("finetune_bimanual")
    chunks = []
    node.create_subscription(ActionChunk, "/action_chunk", chunks.append, 10)
    client = node.create_client(SetInstruction, "/policy/set_instruction")
    failure = None
    try:
        reply = ros.call(client, SetInstruction.Request(instruction="move to the grey level"), timeout=120)
        assert reply.success, reply.message
        ros.wait_for(lambda: len(chunks) >= 3, 90, "action chunks from the fine-tuned checkpoint")
        chunk = chunk_from_msg(chunks[-1])
        assert chunk.actions.shape == (10, 14) and np.isfinite(chunk.actions).all()
        assert chunk.dimension_names[6] == "left_gripper" and chunk.dimension_names[13] == "right_gripper"
    except AssertionError as exc:
        failure = exc
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)
    assert failure is None, f"{failure}\n--- graph output ---\n{output[-4000:]}"
    assert launcher.returncode == 0, output[-3000:]
