"""What a fine-tuned checkpoint tells the deployment graph, so that the robot's inputs are the
ones the model was trained on: which cameras take Octo's average crop (only those trained with
the random resized crop), and proprio dimensions that never varied in the data are not blown up
by a zero standard deviation."""
import json

import numpy as np

from octo_ros.finetune.lerobot import EpisodeData
from octo_ros.finetune.statistics import compute_statistics
from octo_ros.inference.checkpoint_info import checkpoint_average_crop
from octo_ros.model.native import NATIVE_META
from octo_ros.model.normalization import normalize
from octo_ros.model.testing import make_untrained_checkpoint


def _episode(states: np.ndarray) -> EpisodeData:
    return EpisodeData(dataset=None, index=0, action=np.zeros((len(states), 7), np.float32), state=states, instruction="x")


def test_a_constant_proprio_dimension_is_scaled_by_one_not_by_its_zero_std():
    rng = np.random.default_rng(0)
    states = np.stack([rng.normal(0.3, 0.1, 200), np.zeros(200), np.full(200, 1.2684)], 1).astype(np.float32)
    stats = compute_statistics([_episode(states)], ["x", "y", "z", "roll", "pitch", "yaw", "gripper"], proprio=True)
    assert stats["proprio"]["std"][0] == np.float32(states[:, 0]).std(dtype=np.float64).item()
    assert stats["proprio"]["std"][1:] == [1.0, 1.0]
    # in training the constant dimensions are 0; a micro-radian of IK noise at deployment stays tiny
    assert np.all(normalize(states, stats["proprio"])[:, 1:] == 0)
    deployed = normalize(np.array([0.3, 6.2e-7, 1.2684 + 1e-6], np.float32), stats["proprio"])
    assert np.abs(deployed[1:]).max() < 1e-5, deployed


def test_which_cameras_take_the_average_crop(tmp_path):
    official = make_untrained_checkpoint(tmp_path / "official", cameras=("primary", "wrist"))
    assert checkpoint_average_crop(official) == {}  # it does not say: the buffer keeps Octo's default
    config = json.loads((official / "config.json").read_text())
    config["dataset_kwargs"] = {"frame_transform_kwargs": {"image_augment_kwargs": {
        "primary": {"augment_order": ["random_resized_crop", "random_brightness"]},
        "wrist": {"augment_order": ["random_brightness"]}}}}
    (official / "config.json").write_text(json.dumps(config))
    assert checkpoint_average_crop(official) == {"image_primary": True, "image_wrist": False}

    native = tmp_path / "native"
    native.mkdir()
    (native / NATIVE_META).write_text(json.dumps({"format": "octo_ros.native", "source": {"average_crop": {"image_primary": False}}}))
    assert checkpoint_average_crop(native) == {"image_primary": False}
