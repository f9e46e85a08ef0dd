"""`octo-ros finetune` end to end on recorded demonstrations (bags written like the recorder's,
exported by the project's LeRobot v3 exporter): validation loss falls, the output loads for
inference, head_only freezes the transformer, a new 14-D L1 head with a proprio tokenizer gets
the bimanual layout, the official layout re-reads bitwise, runs are reproducible and resumable,
and bad inputs stop with clear errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from support.finetune_data import make_lerobot_dataset

from octo_ros.cli import main as cli
from octo_ros.finetune import FinetuneConfig, FinetuneError, Finetuner, finetune
from octo_ros.model import OctoPolicy, read_official_checkpoint
from octo_ros.model.policy import load_module
from octo_ros.model.testing import make_untrained_checkpoint
from octo_ros.model.weights import export_flax_params

ALOHA_JOINTS = [f"{side}_{j}" for side in ("left", "right")
                for j in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "left_finger")]


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    return {
        "widowx": make_lerobot_dataset(root / "widowx", episodes=6, steps=24, seed=1),
        "aloha": make_lerobot_dataset(root / "aloha", episodes=4, steps=16, action_dim=14, joints=ALOHA_JOINTS, seed=2),
        "ck_primary": make_untrained_checkpoint(root / "ck_primary", cameras=("primary",)),
        "ck_two": make_untrained_checkpoint(root / "ck_two", cameras=("primary", "wrist"), seed=3),
    }


def quick(data, out: Path, **kw) -> FinetuneConfig:
    args = dict(checkpoint=str(data["ck_primary"]), datasets=[str(data["widowx"])], out=str(out), batch_size=4, steps=4,
                log_interval=1, eval_interval=1000, save_interval=1000, val_batches=1, val_fraction=0.3, progress=False,
                threads=1)
    args.update(kw)
    return FinetuneConfig(**args)


def _case(path: Path, size=64, proprio=None):
    rng = np.random.default_rng(0)
    case = {"input/observation/image_primary": rng.integers(0, 256, (1, 2, size, size, 3), dtype=np.uint8),
            "input/observation/timestep_pad_mask": np.array([[False, True]]),
            "input/task/language_instruction/input_ids": np.array([[5, 6, 1] + [0] * 13]),
            "input/task/language_instruction/attention_mask": np.array([[1, 1, 1] + [0] * 13]),
            "input/task/pad_mask_dict/language_instruction": np.array([True])}
    if proprio:
        case["input/observation/proprio"] = rng.normal(size=(1, 2, proprio)).astype(np.float32)
    np.savez(path, **case)
    return path


def test_finetune_lowers_validation_loss_and_loads_for_inference(data, tmp_path):
    out = tmp_path / "run"
    rc = cli(["finetune", "--checkpoint", str(data["ck_primary"]), "--dataset", str(data["widowx"]), "--out", str(out),
              "--batch-size", "8", "--steps", "100", "--learning-rate", "2e-3", "--log-interval", "25",
              "--eval-interval", "50", "--save-interval", "50", "--val-batches", "4", "--val-fraction", "0.3",
              "--threads", "1", "--quiet"])
    assert rc == 0
    log = json.loads((out / "log.json").read_text())
    val = [r["loss"] for r in log["val"]]
    assert [r["step"] for r in log["val"]] == [0, 50, 100]
    assert val[-1] < 0.7 * val[0], val  # clearly lower than the pretrained model's
    assert log["episodes"] == {"train": 4, "val": 2}
    assert [r["step"] for r in log["train"]] == [25, 50, 75, 100]
    assert all(r["samples_per_s"] > 0 and np.isfinite(r["loss"]) for r in log["train"])
    assert (out / "loss.png").stat().st_size > 1000
    assert sorted(p.name for p in out.iterdir() if p.name.isdigit()) == ["100", "50"]

    stats = json.loads((out / "dataset_statistics.json").read_text())
    assert stats["action"]["mask"] == [True] * 6 + [False]  # the gripper stays unnormalised
    assert stats["num_trajectories"] == 6 and stats["num_transitions"] == 6 * 23

    # loads as an official checkpoint (latest step) and as native; both give the same chunk
    case = _case(tmp_path / "case.npz")
    for ck in (out, out / "native"):
        assert cli(["infer", str(ck), str(case), str(tmp_path / "pred.npz"), "--tokenizer", str(data["ck_primary"])]) == 0
        pred = np.load(tmp_path / "pred.npz")
        assert pred["actions/normalized"].shape == (1, 4, 7) and np.isfinite(pred["actions/unnormalized"]).all()
        np.testing.assert_allclose(pred["unnormalization_statistics/mean"], stats["action"]["mean"], rtol=1e-6)
    policy = OctoPolicy.load(out / "native")
    assert policy.window_size == 2 and policy.action_horizon == 4


def test_head_only_leaves_the_transformer_bitwise_unchanged(data, tmp_path):
    out = tmp_path / "head_only"
    finetune(quick(data, out, mode="head_only", steps=6, learning_rate=1e-3))
    before, _, _, _ = load_module(data["ck_primary"])
    after, _, _, _ = load_module(out / "native")
    old, new = dict(before.named_parameters()), dict(after.named_parameters())
    assert old.keys() == new.keys()
    transformer = [n for n in old if n.startswith("transformer.")]
    assert len(transformer) > 50
    for n in transformer:
        assert torch.equal(old[n], new[n]), n
    changed = [n for n in old if n.startswith("heads.") and not torch.equal(old[n], new[n])]
    assert len(changed) >= 10  # the head trained
    official = read_official_checkpoint(out).params
    pretrained = read_official_checkpoint(data["ck_primary"]).params
    for k, v in pretrained.items():
        if k.startswith("octo_transformer/"):
            assert np.array_equal(official[k], v), k


def test_new_l1_head_and_proprio_give_the_bimanual_layout(data, tmp_path):
    out = tmp_path / "aloha"
    rc = cli(["finetune", "--checkpoint", str(data["ck_two"]), "--dataset", str(data["aloha"]), "--out", str(out),
              "--head", "l1", "--action-dim", "14", "--action-horizon", "8", "--proprio", "--drop-camera", "wrist",
              "--window", "1", "--batch-size", "4", "--steps", "3", "--save-interval", "3", "--val-batches", "1",
              "--threads", "1", "--quiet"])
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    model = config["model"]
    assert config["window_size"] == 1
    assert model["heads"]["action"] == {"module": "octo.model.components.action_heads", "name": "L1ActionHead", "args": [],
                                        "kwargs": {"action_horizon": 8, "action_dim": 14, "readout_key": "readout_action"}}
    assert model["observation_tokenizers"]["proprio"] == {
        "module": "octo.model.components.tokenizers", "name": "LowdimObsTokenizer", "args": [],
        "kwargs": {"n_bins": 256, "bin_type": "normal", "low": -2.0, "high": 2.0, "obs_keys": ["proprio"]}}
    assert sorted(model["observation_tokenizers"]) == ["primary", "proprio"]
    assert model["observation_tokenizers"]["primary"]["name"] == "ImageTokenizer"

    ck = read_official_checkpoint(out)
    d = model["token_embedding_size"]
    assert ck.step == 3
    assert ck.params["heads_action/mean_proj/kernel"].shape == (d, 8 * 14)
    assert ck.params["heads_action/map_head/probe"].shape == (1, 1, d)
    assert ck.params["octo_transformer/obs_proprio_projection/kernel"].shape == (1, d)
    assert ck.params["octo_transformer/obs_proprio_pos_embedding"].shape == (1, 10, 14, d)
    assert not any("wrist" in k or "diffusion_model" in k for k in ck.params)
    assert ck.example_batch["observation"]["proprio"].shape == (1, 1, 14)
    assert ck.example_batch["action"].shape == (1, 1, 8, 14)
    # the official layout re-reads bitwise: same arrays as the native weights
    native, stats, spec, _ = load_module(out / "native")
    exported = export_flax_params(native)
    assert exported.keys() == ck.params.keys()
    assert all(np.array_equal(exported[k], ck.params[k]) for k in exported)
    assert stats["action"]["mask"] == [True] * 6 + [False] + [True] * 6 + [False]
    assert len(stats["proprio"]["mean"]) == 14

    policy = OctoPolicy.load(out)
    assert policy.observation_keys == {"image_primary": (64, 64, 3), "proprio": (14,)}
    obs = {"image_primary": np.zeros((1, 1, 64, 64, 3), np.uint8), "proprio": np.zeros((1, 1, 14), np.float32),
           "timestep_pad_mask": np.ones((1, 1), bool)}
    chunk = policy.sample_actions(obs, policy.create_tasks(tokens={"input_ids": np.array([[1] + [0] * 15]),
                                                                   "attention_mask": np.array([[1] + [0] * 15])}))
    assert chunk.unnormalized.shape == (1, 8, 14) and np.isfinite(chunk.unnormalized).all()
    log = json.loads((out / "log.json").read_text())
    assert {"heads.action.mean_proj.weight", "transformer.projections.obs_proprio.weight"} <= set(log["new_parameters"])


def test_same_seed_same_weights_and_resume_continues_the_run(data, tmp_path):
    finetune(quick(data, tmp_path / "a", steps=6, save_interval=3))
    finetune(quick(data, tmp_path / "b", steps=6, save_interval=3))

    class Interrupted(Finetuner):  # stopped (Ctrl-C) after the checkpoint at step 3
        def train_step(self):
            if self.step == 3:
                raise KeyboardInterrupt
            return super().train_step()

    with pytest.raises(KeyboardInterrupt):
        Interrupted(quick(data, tmp_path / "c", steps=6, save_interval=3)).run()
    assert not (tmp_path / "c" / "6").exists()
    finetune(quick(data, tmp_path / "c", steps=6, save_interval=3, resume=True))
    a, b, c = (read_official_checkpoint(tmp_path / n, step=6).params for n in "abc")
    assert all(np.array_equal(a[k], b[k]) for k in a)  # reproducible
    assert all(np.array_equal(a[k], c[k]) for k in a)  # 3 + 3 resumed == 6
    d = read_official_checkpoint(tmp_path / "a", step=3).params
    assert not all(np.array_equal(a[k], d[k]) for k in a)
    with pytest.raises(FinetuneError, match="--resume"):
        finetune(quick(data, tmp_path / "a", steps=8))


def test_missing_camera_is_named(data, tmp_path):
    with pytest.raises(FinetuneError, match=r"image_wrist.*--camera wrist=.*--drop-camera wrist"):
        finetune(quick(data, tmp_path / "x", checkpoint=str(data["ck_two"])))
    with pytest.raises(FinetuneError, match="no camera 'top'"):
        finetune(quick(data, tmp_path / "x", cameras={"primary": "top"}))


def test_action_dimension_mismatch_without_head(data, tmp_path):
    with pytest.raises(FinetuneError, match=r"14-D.*7-D.*--head"):
        finetune(quick(data, tmp_path / "x", datasets=[str(data["aloha"])]))


def test_empty_dataset(data, tmp_path):
    empty = tmp_path / "empty"
    shutil.copytree(data["widowx"], empty)
    ep_file = empty / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(ep_file)
    pq.write_table(pa.Table.from_pylist([], schema=table.schema), ep_file)
    with pytest.raises(FinetuneError, match="no episodes"):
        finetune(quick(data, tmp_path / "x", datasets=[str(empty)]))
    assert cli(["finetune", "--checkpoint", str(data["ck_primary"]), "--dataset", str(empty), "--out", str(tmp_path / "y"),
                "--quiet"]) == 2
    with pytest.raises(FinetuneError, match="not a LeRobot dataset"):
        finetune(quick(data, tmp_path / "x", datasets=[str(tmp_path)]))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    out = tmp_path / "blowup"
    with pytest.raises(FinetuneError, match=r"non-finite training loss .* at step (\d+)") as err:
        finetune(quick(data, out, steps=40, learning_rate=1e6, save_interval=1, image_augmentation=False))
    step = int(err.value.args[0].split("at step ")[1].split(":")[0])
    assert step >= 2
    assert f"last good checkpoint: {out / str(step - 1)}" in str(err.value)
    saved = sorted(int(p.name) for p in out.iterdir() if p.name.isdigit())
    assert saved[-1] == step - 1  # nothing written for the failed step
    params = read_official_checkpoint(out, step=step - 1).params
    assert all(np.isfinite(v).all() for v in params.values())
    log = json.loads((out / "log.json").read_text())
    assert log["steps"] == step - 1


def test_gradient_accumulation_averages_the_micro_batch_gradients(data, tmp_path):
    tuner = Finetuner(quick(data, tmp_path / "ga", grad_accumulation=2, batch_size=2, clip_gradient=0.0))
    tuner.module.train()
    params = dict(tuner.module.named_parameters())
    before = {n: params[n].detach().clone() for n in tuner.trainable}
    tuner.train_step()  # the first update has learning rate 0 (optax counts from 0): nothing moves
    assert all(torch.equal(before[n], params[n]) for n in tuner.trainable)
    accumulated = {n: params[n].grad.clone() for n in tuner.trainable}
    expected = {n: torch.zeros_like(params[n]) for n in tuner.trainable}
    for micro in range(2):
        batch, gen = tuner._make_batch(0, micro)
        tuner.module.zero_grad()
        tuner.loss(batch, gen, train=True)[0].backward()
        for n in tuner.trainable:
            expected[n] += params[n].grad / 2
    assert sum(float(g.abs().sum()) for g in accumulated.values()) > 0
    for n in tuner.trainable:
        torch.testing.assert_close(accumulated[n], expected[n], rtol=1e-5, atol=1e-7)


def test_instructions_the_tokenizer_cannot_tell_apart_are_refused(data, tmp_path):
    """Words outside the tokenizer's vocabulary are <unk>: two such tasks would train as one."""
    ds = make_lerobot_dataset(tmp_path / "ds", episodes=2, steps=8, seed=3,
                              instructions=("put the gripper on the mauve block", "put the gripper on the teal block"))
    with pytest.raises(FinetuneError, match=r"the instructions '.*(mauve|teal) block' and '.*(teal|mauve) block' give the same tokens"):
        finetune(quick(data, tmp_path / "x", datasets=[str(ds)]))
