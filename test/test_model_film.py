"""FiLM-conditioned image stems (Octo's ``SmallStem(use_film=True)`` with ``task_film_keys``): the
config is read, the layer is the official formula on the instruction's tokens flattened, it starts as the identity, its weights survive
the official layout and the native format, and the stem cache encodes a frame again under a new
instruction."""
import copy
import json

import numpy as np
import pytest
import torch

from octo_ros.model import OctoPolicy
from octo_ros.model.config import UnsupportedComponentError, parse_config
from octo_ros.model.testing import make_config, make_random_checkpoint, write_tokenizer

INSTRUCTIONS = ["put the gripper on the red block", "put the gripper on the green block"]


@pytest.fixture(scope="module")
def film_checkpoint(tmp_path_factory):
    path, _ = make_random_checkpoint(tmp_path_factory.mktemp("ck") / "film", "tiny", seed=3, cameras=("primary",),
                                     head="l1", film=True, dataset="d")
    write_tokenizer(path)
    return path


def _policy(path, film_seed=None):
    policy = OctoPolicy.load(str(path), tokenizer=str(path))
    if film_seed is not None:  # trained-looking FiLM weights (they start at zero)
        gen = torch.Generator().manual_seed(film_seed)
        with torch.no_grad():
            for name, p in policy.module.named_parameters():
                if ".film." in name:
                    p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return policy


def _inputs(policy, instructions=INSTRUCTIONS, seed=0):
    image = np.random.default_rng(seed).integers(0, 256, (1, 2, 64, 64, 3), dtype=np.uint8)
    observations = {"image_primary": np.repeat(image, len(instructions), 0),
                    "timestep_pad_mask": np.ones((len(instructions), 2), bool)}
    return observations, policy.create_tasks(texts=instructions)


def test_the_config_names_film_in_the_encoder_and_the_tokenizer():
    config = make_config("tiny", cameras=("primary",), film=True)
    cfg = parse_config(config)
    image = cfg.observation_tokenizers[0]
    assert image.stem.use_film and image.task_film_keys == ("language_instruction",)

    one_sided = copy.deepcopy(config)
    del one_sided["model"]["observation_tokenizers"]["primary"]["kwargs"]["task_film_keys"]
    with pytest.raises(UnsupportedComponentError, match=r"use_film=True but task_film_keys=\[\]"):
        parse_config(one_sided)
    other_key = copy.deepcopy(config)
    other_key["model"]["observation_tokenizers"]["primary"]["kwargs"]["task_film_keys"] = ["goal_embedding"]
    with pytest.raises(UnsupportedComponentError, match="task_film_keys.*goal_embedding"):
        parse_config(other_key)
    with pytest.raises(ValueError, match="needs language"):
        make_config("tiny", language=False, film=True)


def test_film_starts_as_the_identity(film_checkpoint, tmp_path):
    plain, _ = make_random_checkpoint(tmp_path / "plain", "tiny", seed=3, cameras=("primary",), head="l1", dataset="d")
    film, no_film = _policy(film_checkpoint), OctoPolicy.load(str(plain), tokenizer=str(film_checkpoint))
    params = dict(film.module.named_parameters())
    assert all(float(p.detach().abs().max()) == 0.0 for n, p in params.items() if ".film." in n)
    # the same seed gives the same weights elsewhere: the FiLM model computes what the plain one does
    observations, tasks = _inputs(film)
    a = film.sample_actions(observations, tasks, dataset_key="d").normalized
    b = no_film.sample_actions(observations, tasks, dataset_key="d").normalized
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_the_stem_applies_the_official_formula_to_the_flattened_instruction_tokens(film_checkpoint):
    policy = _policy(film_checkpoint, film_seed=1)
    transformer = policy.module.transformer
    stem = transformer.obs_tokenizers["primary"].stem
    observations, tasks = _inputs(policy)
    seen = {}
    stem.film.register_forward_hook(lambda m, args, out: seen.update(x=args[0], cond=args[1], out=out))
    policy.stem_cache = None
    policy.sample_actions(observations, tasks, dataset_key="d")

    # create_tasks holds the instruction's T5 tokens (B, L, D); the stem sees them flattened
    cond = torch.as_tensor(np.asarray(tasks["language_instruction"])).flatten(1).repeat_interleave(2, 0)  # 2 frames a row
    torch.testing.assert_close(seen["cond"], cond, atol=1e-6, rtol=1e-5)
    x = seen["x"]
    with torch.no_grad():
        scale = cond @ stem.film.scale.weight.T + stem.film.scale.bias
        shift = cond @ stem.film.shift.weight.T + stem.film.shift.bias
    expected = x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
    torch.testing.assert_close(seen["out"], expected, atol=1e-5, rtol=1e-5)
    # the two instructions give the same frame different patch features
    assert (seen["out"][0] - seen["out"][2]).abs().mean() > 1e-3


def test_film_weights_survive_the_official_layout_and_the_native_format(film_checkpoint, tmp_path):
    from octo_ros.model.checkpoint import write_official_checkpoint
    from octo_ros.model.weights import export_flax_params

    policy = _policy(film_checkpoint, film_seed=2)
    flat = export_flax_params(policy.module)
    assert {k.split("FilmConditioning_0/")[-1] for k in flat if "/SmallStem16_0/FilmConditioning_0/" in k} == {
        "Dense_0/kernel", "Dense_0/bias", "Dense_1/kernel", "Dense_1/bias"}
    config = json.loads((film_checkpoint / "config.json").read_text())
    example = None
    official = tmp_path / "official"
    write_official_checkpoint(official, config, flat, policy.dataset_statistics, example, step=0)
    native = policy.save_native(tmp_path / "native")
    observations, tasks = _inputs(policy)
    expected = np.asarray(policy.sample_actions(observations, tasks, dataset_key="d").normalized)
    for path in (official, native):
        reloaded = OctoPolicy.load(str(path), tokenizer=str(film_checkpoint))
        got = np.asarray(reloaded.sample_actions(observations, tasks, dataset_key="d").normalized)
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=str(path))


def test_the_stem_cache_encodes_a_frame_again_under_a_new_instruction(film_checkpoint):
    cached, fresh = _policy(film_checkpoint, film_seed=1), _policy(film_checkpoint, film_seed=1)
    fresh.stem_cache = None
    for instruction in (INSTRUCTIONS[0], INSTRUCTIONS[1], INSTRUCTIONS[0]):
        observations, tasks = _inputs(cached, [instruction])
        a = np.asarray(cached.sample_actions(observations, tasks, dataset_key="d").normalized)
        b = np.asarray(fresh.sample_actions(observations, tasks, dataset_key="d").normalized)
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=instruction)
