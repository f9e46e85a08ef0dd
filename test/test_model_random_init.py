"""The random checkpoints octo_ros trains from (tools/train_demo_policy.sh) pass their inputs
through: with every norm's scale near 0 (the final LayerNorms, the frozen T5's RMSNorms) the
normalized actions were ~0.05 whatever the input, two instructions moved them by 0.002, and a
policy fine-tuned from such weights ignored its instruction."""
import numpy as np

from octo_ros.model.policy import OctoPolicy
from octo_ros.model.testing import make_random_checkpoint, write_tokenizer


def test_a_random_checkpoint_outputs_unit_scale_actions_that_follow_the_instruction(tmp_path):
    make_random_checkpoint(tmp_path, "demo", seed=0, cameras=("primary",), head="l1", action_dim=7, action_horizon=4,
                           dataset="d")
    policy = OctoPolicy.load(str(tmp_path), tokenizer=str(write_tokenizer(tmp_path)))
    image = np.random.default_rng(0).integers(0, 256, (1, 2, 128, 128, 3), dtype=np.uint8)
    observations = {"image_primary": np.repeat(image, 2, 0), "timestep_pad_mask": np.ones((2, 2), bool)}
    tasks = policy.create_tasks(texts=["put the gripper on the red block", "put the gripper on the green block"])
    actions = np.asarray(policy.sample_actions(observations, tasks, dataset_key="d").normalized)
    assert np.abs(actions).mean() > 0.3, "normalized actions of a random model are of unit scale"
    assert np.abs(actions[0] - actions[1]).mean() > 0.05, "one word of the instruction changes the actions"
