"""Self-written checkpoints in the official layout: round trips, variants, and loading errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from octo_ros.model import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    MissingParameterError,
    OctoPolicy,
    ParameterShapeError,
    UnexpectedParameterError,
    UnsupportedComponentError,
    convert_checkpoint,
    read_official_checkpoint,
)
from octo_ros.model.checkpoint import read_msgpack, write_msgpack
from octo_ros.model.policy import load_module
from octo_ros.model.testing import make_random_checkpoint

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GOLDEN = SHARED / "golden"


def _obs(rng, batch=2, window=2, cams=(("primary", 64), ("wrist", 32)), proprio=None):
    obs = {f"image_{c}": rng.integers(0, 256, (batch, window, s, s, 3), dtype=np.uint8) for c, s in cams}
    obs["timestep_pad_mask"] = np.ones((batch, window), bool)
    obs["timestep_pad_mask"][0, 0] = False
    if proprio:
        obs["proprio"] = rng.normal(size=(batch, window, proprio)).astype(np.float32)
    return obs


def _noise(policy, batch, rng):
    h = policy.action_head.cfg
    flat = h.action_horizon * h.action_dim
    return {"initial_noise": rng.normal(size=(batch, flat)).astype(np.float32),
            "step_noise": rng.normal(size=(h.diffusion_steps, batch, flat)).astype(np.float32)}


def _run_module(module, obs, tokens, noise):
    """Reference forward straight through the in-memory module (no policy wrapper)."""
    with torch.inference_mode():
        tt = lambda d: {k: tt(v) if isinstance(v, dict) else torch.from_numpy(np.asarray(v)) for k, v in d.items()}  # noqa: E731
        o = tt(obs)
        tasks = {"language_instruction": tt(tokens), "pad_mask_dict": {"language_instruction": torch.ones(len(tokens["input_ids"]), dtype=torch.bool)}}
        groups = module.transformer(o, tasks, o["timestep_pad_mask"], readouts_only=True)
        head = module.heads["action"]
        emb = head.embed(groups["readout_action"])
        return head.predict(emb[:, -1], torch.from_numpy(noise["initial_noise"]), list(torch.from_numpy(noise["step_noise"])), embodiment_action_dim=7).numpy()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt") / "tiny"
    path, module = make_random_checkpoint(root, "tiny", seed=3, proprio_dim=5)
    return path, module


def _tokens(batch=2):
    ids = np.zeros((batch, 16), np.int64)
    ids[:, :4] = [[57, 912, 33, 1]] * batch
    return {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64)}


def test_official_layout_written(tiny_ckpt):
    path, _ = tiny_ckpt
    for f in ("config.json", "dataset_statistics.json", "example_batch.msgpack", "0/default/checkpoint", "0/default/_METADATA"):
        assert (path / f).is_file(), f
    ck = read_official_checkpoint(path)
    assert ck.step == 0
    assert "octo_transformer/BlockTransformer_0/Transformer_0/encoderblock_1/MultiHeadDotProductAttention_0/query/kernel" in ck.params
    assert ck.params["octo_transformer/obs_proprio_projection/kernel"].shape == (1, 64)
    assert ck.example_batch["observation"]["image_primary"].shape == (1, 2, 64, 64, 3)


def test_reload_reproduces_in_memory_model_exactly(tiny_ckpt, tmp_path):
    path, module = tiny_ckpt
    loaded, stats, spec, info = load_module(path)
    ref = module.state_dict()
    got = loaded.state_dict()
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    rng = np.random.default_rng(0)
    obs = _obs(rng, proprio=5)
    noise = _noise(OctoPolicy(loaded, stats, spec), 2, rng)
    a_ref = _run_module(module, obs, _tokens(), noise)
    a_got = _run_module(loaded, obs, _tokens(), noise)
    np.testing.assert_array_equal(a_ref, a_got)
    # through the public API and the native format: identical as well
    pol = OctoPolicy.load(path)
    tasks = pol.create_tasks(tokens=_tokens())
    out = pol.sample_actions(obs, tasks, noise=noise)
    np.testing.assert_array_equal(out.normalized, a_ref)
    convert_checkpoint(path, tmp_path / "native", progress=False)
    nat = OctoPolicy.load(tmp_path / "native")
    for k, v in nat.module.state_dict().items():
        assert torch.equal(v, ref[k]), k
    out2 = nat.sample_actions(obs, nat.create_tasks(tokens=_tokens()), noise=noise)
    np.testing.assert_array_equal(out2.normalized, out.normalized)
    np.testing.assert_array_equal(out2.unnormalized, out.unnormalized)
    assert nat.dataset_statistics == pol.dataset_statistics


def test_window_camera_subsets_batch_and_seed(tiny_ckpt):
    path, _ = tiny_ckpt
    pol = OctoPolicy.load(path)
    rng = np.random.default_rng(1)
    obs = _obs(rng, batch=3, proprio=5)
    tasks = pol.create_tasks(tokens=_tokens(3))
    a = pol.sample_actions(obs, tasks, seed=7)
    b = pol.sample_actions(obs, tasks, seed=7)
    np.testing.assert_array_equal(a.normalized, b.normalized)
    assert a.normalized.shape == (3, 4, 7) and np.isfinite(a.normalized).all()
    c = pol.sample_actions(obs, tasks, seed=8)
    assert not np.array_equal(a.normalized, c.normalized)
    # batch elements are independent: row 1 alone gives the same readout
    one = {k: v[1:2] for k, v in obs.items()}
    r1 = pol.sample_actions(one, pol.create_tasks(tokens=_tokens(1)), seed=0)
    np.testing.assert_allclose(r1.readout_embedding[0], a.readout_embedding[1], atol=1e-5)
    # window 1 (latest frame) and a single camera (wrist omitted -> its tokens disappear)
    w1 = {k: v[:, -1:] for k, v in obs.items()}
    out = pol.sample_actions(w1, tasks, seed=0)
    assert out.readout_embedding.shape == (3, 1, 64)
    cams = {k: v for k, v in obs.items() if k != "image_wrist"}
    groups = pol.run_transformer(cams, tasks)
    assert "obs_wrist" not in groups and groups["obs_primary"].tokens.shape[2] == 16
    with pytest.raises(ValueError, match="exceeds"):
        pol.sample_actions({k: np.repeat(v, 6, axis=1) for k, v in obs.items()}, tasks, seed=0)
    with pytest.raises(ValueError, match="image_primary"):
        bad = dict(obs, image_primary=obs["image_primary"][:, :, :32])
        pol.sample_actions(bad, tasks, seed=0)


def test_l1_map_head_roundtrip(tmp_path):
    path, module = make_random_checkpoint(tmp_path / "aloha", "tiny", seed=5, cameras=("primary",), head="l1",
                                          action_dim=14, action_horizon=50, proprio_dim=14, language=False)
    ck = read_official_checkpoint(path)
    assert "heads_action/map_head/probe" in ck.params
    assert ck.params["heads_action/map_head/MultiHeadDotProductAttention_0/query/kernel"].shape == (64, 8, 8)
    pol = OctoPolicy.load(path)
    assert (pol.head_kind, pol.action_dim, pol.action_horizon) == ("continuous", 14, 50)
    rng = np.random.default_rng(2)
    obs = _obs(rng, batch=2, window=1, cams=(("primary", 64),), proprio=14)
    out = pol.sample_actions(obs, pol.create_tasks(batch_size=2))
    assert out.normalized.shape == (2, 50, 14) and out.unnormalized.shape == (2, 50, 14)
    assert np.abs(out.normalized).max() <= 5.0
    out2 = pol.sample_actions(obs, pol.create_tasks(batch_size=2))
    np.testing.assert_array_equal(out.normalized, out2.normalized)  # deterministic head
    for k, v in module.state_dict().items():
        assert torch.equal(pol.module.state_dict()[k], v), k


def test_golden_msgpack_rewrites_byte_identical(tmp_path):
    src = GOLDEN / "tiny" / "checkpoint" / "0" / "default" / "checkpoint"
    if not src.is_file():
        pytest.skip(f"golden data not found at {GOLDEN}")
    write_msgpack(read_msgpack(src), tmp_path / "checkpoint")
    assert (tmp_path / "checkpoint").read_bytes() == src.read_bytes()


# ------------------------------------------------------------------------------------------ errors


@pytest.fixture()
def ckpt_copy(tiny_ckpt, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(tiny_ckpt[0], dst)
    return dst


def test_error_missing_directory(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="not found"):
        OctoPolicy.load(tmp_path / "nope")


def test_error_missing_config(ckpt_copy):
    (ckpt_copy / "config.json").unlink()
    with pytest.raises(CheckpointNotFoundError, match="config.json"):
        OctoPolicy.load(ckpt_copy)


def test_error_missing_param_file(ckpt_copy):
    (ckpt_copy / "0" / "default" / "checkpoint").unlink()
    (ckpt_copy / "0" / "default" / "_METADATA").unlink()
    with pytest.raises(CheckpointNotFoundError, match="checkpoint"):
        OctoPolicy.load(ckpt_copy)


def test_error_truncated_file(ckpt_copy):
    f = ckpt_copy / "0" / "default" / "checkpoint"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        OctoPolicy.load(ckpt_copy)


def test_error_truncated_native(tiny_ckpt, tmp_path):
    convert_checkpoint(tiny_ckpt[0], tmp_path / "nat", progress=False)
    f = tmp_path / "nat" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(CorruptCheckpointError):
        OctoPolicy.load(tmp_path / "nat")


def test_error_wrong_step(ckpt_copy):
    with pytest.raises(CheckpointNotFoundError, match=r"step 5 not found.*\[0\]"):
        OctoPolicy.load(ckpt_copy, step=5)


def _edit_config(path, fn):
    cfg = json.loads((path / "config.json").read_text())
    fn(cfg)
    (path / "config.json").write_text(json.dumps(cfg))


def test_error_unknown_head(ckpt_copy):
    _edit_config(ckpt_copy, lambda c: c["model"]["heads"]["action"].update(name="FancyActionHead"))
    with pytest.raises(UnsupportedComponentError, match="FancyActionHead"):
        OctoPolicy.load(ckpt_copy)


def test_error_unknown_tokenizer(ckpt_copy):
    _edit_config(ckpt_copy, lambda c: c["model"]["observation_tokenizers"]["wrist"].update(name="VoxelTokenizer"))
    with pytest.raises(UnsupportedComponentError, match="VoxelTokenizer"):
        OctoPolicy.load(ckpt_copy)


def test_error_shape_mismatch_names_parameter(ckpt_copy):
    _edit_config(ckpt_copy, lambda c: c["model"]["transformer_kwargs"].update(mlp_dim=96))
    with pytest.raises(ParameterShapeError, match="encoderblock_0/MlpBlock_0/Dense_0/kernel"):
        OctoPolicy.load(ckpt_copy)


def test_error_missing_and_unexpected_parameters(ckpt_copy):
    _edit_config(ckpt_copy, lambda c: c["model"]["transformer_kwargs"].update(num_layers=3))
    with pytest.raises(MissingParameterError, match="encoderblock_2"):
        OctoPolicy.load(ckpt_copy)
    _edit_config(ckpt_copy, lambda c: c["model"]["transformer_kwargs"].update(num_layers=1))
    with pytest.raises(UnexpectedParameterError, match="encoderblock_1"):
        OctoPolicy.load(ckpt_copy)
