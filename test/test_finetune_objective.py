"""Training objectives of octo_ros.finetune against Octo's formulas (octo_spec.md §3, finetune.md
§A.5-A.7), written out here independently in NumPy float64, and a finite-difference gradient check."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from octo_ros.finetune.losses import continuous_loss, diffusion_loss
from octo_ros.model.testing import make_random_checkpoint

B, W = 3, 2


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One CPU thread: two threads spin against each other on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("ck")
    _, diff = make_random_checkpoint(root / "diffusion", "tiny", cameras=("primary",), head="diffusion", seed=1)
    _, l1 = make_random_checkpoint(root / "l1", "tiny", cameras=("primary",), head="l1", action_horizon=3, seed=2)
    return diff, l1


def _inputs(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = {"image_primary": torch.randint(0, 256, (B, W, 64, 64, 3), generator=g, dtype=torch.uint8)}
    tasks = {"language_instruction": torch.randn(B, 16, 32, generator=g),
             "pad_mask_dict": {"language_instruction": torch.tensor([True, False, True])}}
    tpm = torch.tensor([[False, True], [True, True], [True, True]])
    groups = module.transformer(obs, tasks, tpm, readouts_only=True)
    return groups["readout_action"].tokens.mean(-2), tpm  # mean pooling (use_map False)


def _masks(h, a, seed=0):
    rng = np.random.default_rng(seed)
    apm = rng.random((B, W, h, a)) > 0.3
    apm[:, :, :, 0] = True
    return torch.from_numpy(apm)


def cosine_alpha_hats(steps: int, s: float = 0.008) -> np.ndarray:
    """Octo's cosine schedule from the formula (float64)."""
    t = np.arange(steps + 1) / steps
    abar = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    abar = abar / abar[0]
    betas = np.clip(1 - abar[1:] / abar[:-1], 0, 0.999)
    return np.cumprod(1 - betas)


def test_schedule_matches_the_spec_table():
    table_20 = [0.99200732, 0.97209275, 0.94073904, 0.89870596, 0.84701222, 0.78691047, 0.71985751, 0.64747828,
                0.57152677, 0.49384362, 0.41631153, 0.34080961, 0.26916760, 0.20312144, 0.14427207, 0.09404556,
                0.05365919, 0.02409173, 0.00605964, 0.00000606]  # octo_spec.md §3.1
    np.testing.assert_allclose(cosine_alpha_hats(20), table_20, atol=2e-7)


def test_diffusion_loss_is_octos_objective(models):
    module, _ = models
    head = module.heads["action"]
    c = head.cfg
    h, a = c.action_horizon, c.action_dim
    emb, tpm = _inputs(module)
    g = torch.Generator().manual_seed(3)
    actions = 4 * torch.randn(B, W, h, a, generator=g)  # some beyond max_action: clipped as targets
    apm = _masks(h, a)
    time = torch.randint(0, c.diffusion_steps, (1, B, W, 1), generator=g)
    noise = torch.randn(1, B, W, h * a, generator=g)
    with torch.no_grad():
        loss, metrics = diffusion_loss(head, emb, actions, tpm, apm, time=time, noise=noise)

        # independent: x_t = sqrt(ahat) a + sqrt(1 - ahat) eps with clipped, flattened targets
        ahat = cosine_alpha_hats(c.diffusion_steps)[time.numpy()]
        target = np.clip(actions.numpy().astype(np.float64).reshape(B, W, -1), -5, 5)[None]
        noisy = np.sqrt(ahat) * target + np.sqrt(1 - ahat) * noise.numpy()
        eps_hat = head.diffusion_model(emb[None].float(), torch.from_numpy(noisy).float(), time.float()).double().numpy()
        mask = (tpm.numpy()[:, :, None, None] & apm.numpy()).reshape(B, W, -1)[None].astype(np.float64)
        expected = np.mean((eps_hat - noise.numpy()) ** 2 * mask) / max(mask.mean(), 1e-5) * a
    assert float(loss) == pytest.approx(expected, rel=2e-5)
    assert float(metrics["mse"]) == pytest.approx(expected, rel=2e-5)

    # a padded window position does not count (each position is its own score-network input)
    changed = actions.clone()
    changed[~tpm] += 1.0
    with torch.no_grad():
        again, _ = diffusion_loss(head, emb, changed, tpm, apm, time=time, noise=noise)
    assert float(again) == pytest.approx(float(loss), rel=1e-6)


def test_l1_loss_is_octos_objective(models):
    _, module = models
    head = module.heads["action"]
    c = head.cfg
    assert c.loss_type == "l1" and c.use_map
    h, a = c.action_horizon, c.action_dim
    g = torch.Generator().manual_seed(5)
    obs = {"image_primary": torch.randint(0, 256, (B, W, 64, 64, 3), generator=g, dtype=torch.uint8)}
    tasks = {"language_instruction": torch.randn(B, 16, 32, generator=g)}
    tpm = torch.tensor([[False, True], [True, True], [True, True]])
    actions = 6 * torch.randn(B, W, h, a, generator=g)  # no clipping of the targets for L1
    apm = _masks(h, a, seed=1)
    with torch.no_grad():
        groups = module.transformer(obs, tasks, tpm, readouts_only=True)
        emb = head.embed(groups["readout_action"])
        loss, metrics = continuous_loss(head, emb, actions, tpm, apm)
        w = head.mean_proj.weight.double().numpy()
        bias = head.mean_proj.bias.double().numpy()
        pred = np.tanh((emb.double().numpy() @ w.T + bias) / 5.0) * 5.0
        pred = pred.reshape(B, W, h, a)
        mask = (tpm.numpy()[:, :, None, None] & apm.numpy()).astype(np.float64)
        err = pred - actions.double().numpy()
        l1 = np.mean(np.abs(err) * mask) / max(mask.mean(), 1e-5)
        mse = np.mean(err ** 2 * mask) / max(mask.mean(), 1e-5)
    assert float(loss) == pytest.approx(l1, rel=1e-5)
    assert float(metrics["mse"]) == pytest.approx(mse, rel=1e-5)
    changed = actions.clone()
    changed[~(tpm[:, :, None, None] & apm)] += 3.0  # masked targets do not count
    with torch.no_grad():
        assert float(continuous_loss(head, emb, changed, tpm, apm)[0]) == pytest.approx(float(loss), rel=1e-6)


def test_gradient_matches_finite_differences(models):
    """Directional derivatives of the diffusion loss (float64) along random directions in the space
    of all trainable parameters equal autograd's gradient."""
    module, _ = models
    module = module.double()
    module.transformer.attention_dtype = None  # the inference default computes attention in float32
    try:
        head = module.heads["action"]
        c = head.cfg
        g = torch.Generator().manual_seed(7)
        obs = {"image_primary": torch.randint(0, 256, (B, W, 64, 64, 3), generator=g, dtype=torch.uint8)}
        tasks = {"language_instruction": torch.randn(B, 16, 32, generator=g, dtype=torch.float64)}
        tpm = torch.tensor([[False, True], [True, True], [True, True]])
        actions = torch.randn(B, W, c.action_horizon, c.action_dim, generator=g, dtype=torch.float64)
        apm = _masks(c.action_horizon, c.action_dim, seed=2)
        time = torch.randint(0, c.diffusion_steps, (1, B, W, 1), generator=g)
        noise = torch.randn(1, B, W, c.action_horizon * c.action_dim, generator=g, dtype=torch.float64)
        # all but T5 (frozen) and the stem kernels, which the stem standardises in float32
        params = [p for n, p in module.named_parameters() if ".t5." not in n and not (".convs." in n and n.endswith("weight"))]

        def f():
            groups = module.transformer(obs, tasks, tpm, readouts_only=True)
            emb = head.embed(groups["readout_action"]).double()
            return diffusion_loss(head, emb, actions, tpm, apm, time=time, noise=noise)[0]

        module.zero_grad()
        f().backward()
        grads = [p.grad.clone() for p in params]
        assert all(torch.isfinite(gr).all() for gr in grads) and sum(float(gr.abs().sum()) for gr in grads) > 0
        for k in range(3):
            dirs = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
            eps = 1e-6
            with torch.no_grad():
                for p, d in zip(params, dirs):
                    p.add_(eps * d)
                up = float(f())
                for p, d in zip(params, dirs):
                    p.sub_(2 * eps * d)
                down = float(f())
                for p, d in zip(params, dirs):
                    p.add_(eps * d)
            numeric = (up - down) / (2 * eps)
            analytic = sum(float((gr * d).sum()) for gr, d in zip(grads, dirs))
            assert math.isclose(numeric, analytic, rel_tol=1e-5, abs_tol=1e-7), (k, numeric, analytic)
    finally:
        module.float()
        module.transformer.attention_dtype = torch.float32

