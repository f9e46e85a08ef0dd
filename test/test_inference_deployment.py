"""Deploying a fine-tuned checkpoint as it was trained: proprio normalized with the checkpoint's
statistics (Octo's NormalizeProprio), single-dataset (flat) statistics accepted by the policy node."""
import json
import time

import numpy as np

from octo_ros.datatypes import ObservationWindow
from octo_ros.inference.runtime import model_batch
from octo_ros.model.testing import make_untrained_checkpoint


def _window(proprio: np.ndarray) -> ObservationWindow:
    steps = proprio.shape[0]
    return ObservationWindow(images={"image_primary": np.zeros((steps, 8, 8, 3), np.uint8)}, proprio=proprio,
                             stamps_ns=np.arange(steps, dtype=np.int64), timestep_pad_mask=np.ones(steps, bool),
                             proprio_names=("j1", "j2", "gripper"))


def test_proprio_is_normalized_with_the_checkpoint_statistics_and_masked_dimensions_pass_through():
    proprio = np.array([[0.5, -1.0, 0.3], [1.5, 2.0, 0.9]], np.float32)
    stats = {"mean": [1.0, 0.0, 0.5], "std": [0.5, 2.0, 1.0], "mask": [True, True, False]}
    obs = model_batch(_window(proprio), ["image_primary", "proprio"], max_window=2, proprio_statistics=stats)
    expected = np.array([[-1.0, -0.5, 0.3], [1.0, 1.0, 0.9]], np.float32)
    np.testing.assert_allclose(obs["proprio"][0], expected, rtol=1e-6)
    raw = model_batch(_window(proprio), ["image_primary", "proprio"], max_window=2)  # no statistics: as given
    np.testing.assert_array_equal(raw["proprio"][0], proprio)


def test_policy_node_runs_a_checkpoint_with_single_dataset_statistics(ros, tmp_path):
    """The official fine-tune layout keeps one dataset's statistics flat (no dataset key); the node
    died on start-up with IndexError while naming the statistics it uses."""
    checkpoint = make_untrained_checkpoint(tmp_path / "ck")
    path = checkpoint / "dataset_statistics.json"
    nested = json.loads(path.read_text())
    path.write_text(json.dumps(next(iter(nested.values()))))  # flat: {"action": ..., ...}
    policy = ros.spawn_module("policy", "octo_ros.ros.nodes.policy",
                              params={"checkpoint": str(checkpoint), "step_period": 0.2})
    ros.wait_for(lambda: "statistics 'single dataset'" in policy.output(), 120, "the policy to load")
    time.sleep(1.0)
    assert policy.alive() and "Traceback" not in policy.output(), policy.output()
