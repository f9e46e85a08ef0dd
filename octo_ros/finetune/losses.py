"""Octo's training objectives (``octo/model/components/action_heads.py``), with its pad masks.

* ``masked_mean(x, m) = mean(x * m) / max(mean(m), 1e-5)`` over all elements;
* mask = ``timestep_pad_mask[:, :, None, None] & action_pad_mask`` (B, W, H, A);
* L1 / MSE heads: ``|pred - a|`` or ``(pred - a)^2`` through the masked mean (no target clipping);
* diffusion head: targets flattened to (B, W, H*A) and clipped to ``±max_action``; per sample a
  step ``k ~ U{0..T-1}`` and ``eps ~ N(0, I)``; ``x_k = sqrt(ahat_k) a + sqrt(1 - ahat_k) eps``;
  the score network predicts ``eps`` from [time features(k), embedding, x_k]; loss =
  masked mean of ``(eps_hat - eps)^2`` times ``action_dim``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from octo_ros.model.heads import ContinuousActionHead, DiffusionActionHead


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float32, or float64 for float64 inputs (gradient checks)."""
    return torch.promote_types(x.dtype, torch.float32)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).mean() / mask.mean().clamp_min(1e-5)


def action_mask(timestep_pad_mask: torch.Tensor, action_pad_mask: torch.Tensor) -> torch.Tensor:
    return timestep_pad_mask.bool()[:, :, None, None] & action_pad_mask.bool()


def continuous_loss(head: ContinuousActionHead, embedding: torch.Tensor, actions: torch.Tensor,
                    timestep_pad_mask: torch.Tensor, action_pad_mask: torch.Tensor) -> Tuple[torch.Tensor, dict]:
    """``embedding`` (B, W, D); ``actions`` (B, W, H, A) normalised targets."""
    c = head.cfg
    ct = _compute_dtype(embedding)
    mean = head.mean_proj(embedding.to(head.mean_proj.weight.dtype)).to(ct)
    pred = (torch.tanh(mean / c.max_action) * c.max_action).reshape(*mean.shape[:-1], c.action_horizon, c.action_dim)
    mask = action_mask(timestep_pad_mask, action_pad_mask)
    err = pred - actions.to(ct)
    l1 = masked_mean(err.abs(), mask)
    mse = masked_mean(err.square(), mask)
    loss = l1 if c.loss_type == "l1" else mse
    return loss, {"loss": loss.detach(), "mse": mse.detach(), "l1": l1.detach()}


def diffusion_loss(head: DiffusionActionHead, embedding: torch.Tensor, actions: torch.Tensor,
                   timestep_pad_mask: torch.Tensor, action_pad_mask: torch.Tensor,
                   generator: Optional[torch.Generator] = None, *, time: Optional[torch.Tensor] = None,
                   noise: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, dict]:
    """Noise-prediction loss.  ``time`` (n, B, W, 1) int and ``noise`` (n, B, W, H*A) may be given
    (tests); otherwise they are drawn from ``generator`` (CPU) with n = ``n_diffusion_samples``."""
    c = head.cfg
    ct = _compute_dtype(embedding)
    b, w = actions.shape[:2]
    flat = actions.to(ct).reshape(b, w, -1).clamp(-c.max_action, c.max_action)
    n = c.n_diffusion_samples
    if time is None:
        time = torch.randint(0, c.diffusion_steps, (n, b, w, 1), generator=generator)
    if noise is None:
        noise = torch.randn((n, b, w, flat.shape[-1]), generator=generator)
    time = time.to(flat.device)
    noise = noise.to(flat.device, ct)
    ahat = head.alpha_hats.to(flat.device, ct)[time]  # (n, B, W, 1)
    noisy = ahat.sqrt() * flat[None] + (1 - ahat).sqrt() * noise
    obs = embedding.to(ct)[None].expand(noise.shape[0], -1, -1, -1)
    net = head.diffusion_model
    dt = net.input_fc.weight.dtype
    eps = net(obs.to(dt), noisy.to(dt), time.to(dt)).to(ct)
    mask = action_mask(timestep_pad_mask, action_pad_mask).reshape(b, w, -1)[None]
    mse = masked_mean((eps - noise).square(), mask.expand_as(noise))
    loss = mse * c.action_dim
    return loss, {"loss": loss.detach(), "mse": loss.detach()}


def head_loss(head, embedding, actions, timestep_pad_mask, action_pad_mask, generator=None):
    if isinstance(head, DiffusionActionHead):
        return diffusion_loss(head, embedding, actions, timestep_pad_mask, action_pad_mask, generator)
    if isinstance(head, ContinuousActionHead):
        return continuous_loss(head, embedding, actions, timestep_pad_mask, action_pad_mask)
    raise TypeError(f"no training objective for {type(head).__name__}")
