"""Text tokenization, task construction (language / goal / both / none), caching, normalisation."""

import io

import numpy as np
import pytest
import torch

from octo_ros.model import NormalizationType, OctoPolicy, T5TextTokenizer, unnormalize_actions
from octo_ros.model.normalization import normalize, select_statistics
from octo_ros.model.testing import make_random_checkpoint
from octo_ros.model.text import TextTokenizerError

CORPUS = [
    "pick up the red spoon and put it in the pot",
    "open the drawer",
    "put the carrot on the plate",
    "move the cloth to the left side of the table",
    "close the microwave door",
    "stack the blue block on the green block",
] * 20


@pytest.fixture(scope="module")
def spm_file(tmp_path_factory):
    sentencepiece = pytest.importorskip("sentencepiece")
    buf = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=buf, vocab_size=60, hard_vocab_limit=False,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, model_type="unigram",
    )
    path = tmp_path_factory.mktemp("tok") / "spiece.model"
    path.write_bytes(buf.getvalue())
    return path


def test_tokenizer_octo_settings(spm_file):
    tok = T5TextTokenizer.from_pretrained(spm_file.parent)  # folder holding spiece.model
    out = tok(["open the drawer", "", " ".join(CORPUS[:3])])
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.shape == mask.shape == (3, 16) and ids.dtype == np.int64
    n = int(mask[0].sum())
    assert ids[0, n - 1] == 1 and (ids[0, n:] == 0).all() and (ids[0, : n - 1] > 2).all()
    assert ids[1].tolist() == [1] + [0] * 15 and mask[1].tolist() == [1] + [0] * 15  # "" -> EOS only
    assert mask[2].all() and ids[2, 15] == 1  # truncated to 15 pieces + EOS
    assert tok(["open the drawer"])["input_ids"].tolist() == ids[:1].tolist()
    with pytest.raises(TextTokenizerError):
        T5TextTokenizer.from_pretrained(spm_file.parent / "missing" / "spiece.model")


@pytest.fixture(scope="module")
def policy(tmp_path_factory, spm_file):
    path, _ = make_random_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", "tiny", seed=11)
    return OctoPolicy.load(path, tokenizer=spm_file, threads=2)


def _obs(batch=1, seed=0):
    rng = np.random.default_rng(seed)
    return {"image_primary": rng.integers(0, 256, (batch, 2, 64, 64, 3), dtype=np.uint8),
            "image_wrist": rng.integers(0, 256, (batch, 2, 32, 32, 3), dtype=np.uint8),
            "timestep_pad_mask": np.array([[False, True]] * batch)}


def test_task_kinds_and_flags(policy):
    goal = {"image_primary": np.full((1, 64, 64, 3), 200, np.uint8)}
    lang = policy.create_tasks(texts=["open the drawer"])
    goal_t = policy.create_tasks(goals=goal)
    both = policy.create_tasks(texts=["open the drawer"], goals=goal)
    none = policy.create_tasks()
    assert lang["pad_mask_dict"]["language_instruction"].tolist() == [True]
    assert lang["pad_mask_dict"]["image_primary"].tolist() == [False]
    assert (lang["image_primary"] == 0).all()  # zero placeholder, as Octo's create_tasks
    assert goal_t["pad_mask_dict"]["language_instruction"].tolist() == [False]
    assert goal_t["pad_mask_dict"]["image_primary"].tolist() == [True]
    assert both["pad_mask_dict"]["language_instruction"].tolist() == [True]
    assert none["pad_mask_dict"]["language_instruction"].tolist() == [False]
    obs = _obs()
    outs = [policy.sample_actions(obs, t, seed=0).readout_embedding for t in (lang, goal_t, both, none)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(outs[i], outs[j]), (i, j)
    # language tokens masked out: the instruction content must not matter
    g = policy.run_transformer(obs, goal_t)
    assert not g["task_language"].mask.any() and not g["obs_task_language"].mask.any()
    other = policy.create_tasks(texts=["close the microwave door"], goals=goal)
    other["pad_mask_dict"]["language_instruction"][:] = False
    np.testing.assert_allclose(policy.sample_actions(obs, other, seed=0).readout_embedding, outs[1], atol=1e-6)


def test_language_embedding_cache(policy, monkeypatch):
    calls = []
    t5 = policy.module.transformer.task_tokenizers["language"].t5
    orig = t5.forward
    monkeypatch.setattr(t5, "forward", lambda *a, **k: calls.append(a[0].shape[0]) or orig(*a, **k))
    policy._lang_cache.clear()
    a = policy.create_tasks(texts=["put the carrot on the plate"])
    b = policy.create_tasks(texts=["put the carrot on the plate"])
    c = policy.create_tasks(texts=["put the carrot on the plate", "open the drawer"])
    assert calls == [1, 1]  # second call cached; the batch only encodes the new instruction
    assert torch.equal(a["language_instruction"], b["language_instruction"])
    assert torch.equal(c["language_instruction"][0], a["language_instruction"][0])


def test_generator_and_batch(policy):
    obs = _obs(batch=4, seed=3)
    tasks = policy.create_tasks(texts=["open the drawer"] * 4)
    g1 = torch.Generator().manual_seed(5)
    g2 = torch.Generator().manual_seed(5)
    a = policy.sample_actions(obs, tasks, generator=g1)
    b = policy.sample_actions(obs, tasks, generator=g2)
    np.testing.assert_array_equal(a.normalized, b.normalized)
    assert a.normalized.shape == (4, 4, 7) and a.unnormalized.shape == (4, 4, 7)
    c = policy.sample_actions(obs, tasks, generator=g1)  # generator advanced -> new noise
    assert not np.array_equal(a.normalized, c.normalized)


def test_unnormalization_modes_and_mask():
    stats = {"mean": [1.0, 2.0, 0.5], "std": [2.0, 0.5, 9.0], "p01": [-1.0, 0.0, 0.0], "p99": [3.0, 1.0, 1.0],
             "mask": [True, True, False]}
    a = np.array([[[0.5, -1.0, 0.7]]], np.float32)
    np.testing.assert_allclose(unnormalize_actions(a, stats), [[[2.0, 1.5, 0.7]]])
    np.testing.assert_allclose(unnormalize_actions(a, stats, NormalizationType.BOUNDS), [[[2.0, 0.0, 0.7]]])
    np.testing.assert_allclose(unnormalize_actions(a, stats, "bounds"), [[[2.0, 0.0, 0.7]]])
    x = np.array([3.0, 1.5, 0.7], np.float32)
    np.testing.assert_allclose(normalize(x, stats), [1.0, -1.0, 0.7], atol=1e-6)
    # statistics selection: multi-dataset dict and single-dataset (fine-tune) layout
    multi = {"bridge": {"action": stats}, "fractal": {"action": dict(stats, mean=[0, 0, 0])}}
    assert select_statistics(multi, "fractal")["action"]["mean"] == [0, 0, 0]
    with pytest.raises(KeyError, match="available"):
        select_statistics(multi, None)
    with pytest.raises(KeyError, match="unknown dataset key"):
        select_statistics(multi, "kuka")
    flat = {"action": stats}
    assert select_statistics(flat)["action"] is stats


def test_policy_dataset_key_and_description(policy):
    assert policy.dataset_keys == ["bridge_dataset"]
    info = policy.action_info("bridge_dataset")
    assert len(info["mean"]) == 7 and info["mask"][-1] is False
    d = policy.describe()
    assert d["action_dim"] == 7 and d["action_horizon"] == 4 and d["window_size"] == 2
    assert d["observation_keys"]["image_wrist"] == (32, 32, 3)
    obs = _obs()
    out = policy.sample_actions(obs, policy.create_tasks(texts=["open the drawer"]), dataset_key="bridge_dataset", seed=1)
    stats = policy.dataset_statistics["bridge_dataset"]["action"]
    np.testing.assert_allclose(out.unnormalized, unnormalize_actions(out.normalized, stats), atol=1e-7)
    assert (out.unnormalized[..., 6] == out.normalized[..., 6]).all()  # gripper left as produced
    with pytest.raises(KeyError):
        policy.sample_actions(obs, policy.create_tasks(), dataset_key="nope", seed=1)
