"""Action heads: DDPM diffusion head (Octo 1.5) and continuous L1/MSE heads with MAP pooling."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import HeadConfig
from .tokenizers import TokenGroup
from .transformer import MlpBlock

# float32 (betas, alpha_hats) exactly as the official jitted JAX sampler computes them on CPU.  The
# cosine schedule evaluated with NumPy differs from XLA's in the last bit of a few entries, which the
# first reverse step (1/sqrt(alpha) ~ 31.6) amplifies; these tables remove that source of error.
_SCHEDULE_TABLES = {
    10: (
        [0.027907252311706543, 0.07549363374710083, 0.12439608573913574, 0.1771894097328186, 0.2372816801071167,
         0.3098832964897156, 0.4040033221244812, 0.5369983911514282, 0.7438291907310486, 0.9990000128746033],
        [0.9720927476882935, 0.8987059593200684, 0.7869104743003845, 0.6474782824516296, 0.49384355545043945,
         0.3408096730709076, 0.20312143862247467, 0.09404554963111877, 0.024091724306344986, 2.4091415980365127e-05],
    ),
    20: (
        [0.007992684841156006, 0.02007502317428589, 0.032253801822662354, 0.044680893421173096, 0.05752032995223999,
         0.0709572434425354, 0.08521038293838501, 0.10054659843444824, 0.11730366945266724, 0.13592219352722168,
         0.15699714422225952, 0.18135905265808105, 0.21021175384521484, 0.24537158012390137, 0.28972500562667847,
         0.3481374979019165, 0.42943406105041504, 0.5510233044624329, 0.7484762668609619, 0.9990000128746033],
        [0.992007315158844, 0.9720927476882935, 0.9407390356063843, 0.8987060189247131, 0.8470121622085571,
         0.7869105339050293, 0.7198575735092163, 0.6474783420562744, 0.5715267658233643, 0.49384358525276184,
         0.4163115620613098, 0.34080970287323, 0.2691674828529358, 0.20312145352363586, 0.1442720890045166,
         0.09404557198286057, 0.05365920066833496, 0.024091729894280434, 0.006059641949832439, 6.059563474991592e-06],
    ),
}


def diffusion_schedule(steps: int):
    """(betas, alphas, alpha_hats) in float32 for ``steps`` diffusion steps."""
    if steps in _SCHEDULE_TABLES:
        betas, alpha_hats = (np.asarray(v, dtype=np.float32) for v in _SCHEDULE_TABLES[steps])
    else:
        betas = cosine_beta_schedule(steps)
        alpha_hats = np.cumprod(np.float32(1) - betas, dtype=np.float32)
    return betas, (np.float32(1) - betas).astype(np.float32), alpha_hats


def cosine_beta_schedule(steps: int, s: float = 0.008) -> np.ndarray:
    """Octo's cosine schedule, evaluated in float32 like the official jnp code."""
    f32 = np.float32
    t = np.linspace(0, steps, steps + 1, dtype=f32) / f32(steps)
    ac = np.cos((t + f32(s)) / f32(1 + s) * f32(np.pi) * f32(0.5)).astype(f32) ** 2
    ac = ac / ac[0]
    betas = f32(1) - ac[1:] / ac[:-1]
    return np.clip(betas, 0, 0.999).astype(f32)


class MAPHead(nn.Module):
    """Multi-head attention pooling: a learned probe attends over a token group."""

    def __init__(self, dim: int, num_heads: int = 8, num_readouts: int = 1, mlp_dim: Optional[int] = None):
        super().__init__()
        self.num_heads, self.num_readouts = num_heads, num_readouts
        self.probe = nn.Parameter(torch.zeros(1, num_readouts, dim))
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MlpBlock(dim, mlp_dim or 4 * dim)

    def forward(self, group: TokenGroup) -> torch.Tensor:
        x, mask = group.tokens, group.mask
        *batch_dims, n, d = x.shape
        x = x.reshape(-1, n, d)
        b, h = x.shape[0], self.num_heads
        q = self.query(self.probe.to(x.dtype)).expand(b, -1, -1)
        split = lambda t: t.view(b, t.shape[1], h, d // h).transpose(1, 2)
        bias = torch.zeros(b, 1, 1, n, dtype=x.dtype, device=x.device)
        bias.masked_fill_(~mask.reshape(b, 1, 1, n).bool(), torch.finfo(x.dtype).min)
        o = F.scaled_dot_product_attention(split(q), split(self.key(x)), split(self.value(x)), attn_mask=bias)
        out = self.out(o.transpose(1, 2).reshape(b, self.num_readouts, d))
        out = out + self.mlp(self.norm(out))
        return out.reshape(*batch_dims, self.num_readouts, d)


def pool(head_map: Optional[MAPHead], group: TokenGroup) -> torch.Tensor:
    """(B, W, n, D) readout group -> (B, W, D) embedding (MAP probe or mean over tokens)."""
    if head_map is not None:
        return head_map(group)[:, :, 0]
    return group.tokens.mean(dim=-2)


class ContinuousActionHead(nn.Module):
    """``tanh(Dense(embedding) / max_action) * max_action`` (L1 / MSE heads; deterministic)."""

    def __init__(self, cfg: HeadConfig, dim: int):
        super().__init__()
        self.cfg = cfg
        self.map_head = MAPHead(dim) if cfg.use_map else None
        self.mean_proj = nn.Linear(dim, cfg.action_horizon * cfg.action_dim)

    def embed(self, group: TokenGroup) -> torch.Tensor:
        return pool(self.map_head, group)

    def predict(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, D) embedding of the last window step -> (B, horizon, action_dim)."""
        c = self.cfg
        mean = self.mean_proj(embedding.to(self.mean_proj.weight.dtype)).float()
        mean = torch.tanh(mean / c.max_action) * c.max_action
        return mean.reshape(*mean.shape[:-1], c.action_horizon, c.action_dim)


class ScoreNetwork(nn.Module):
    """Octo's ``ScoreActor``: Fourier time features -> MLP; [time, obs, x] -> MLP-ResNet -> eps."""

    def __init__(self, cfg: HeadConfig, obs_dim: int):
        super().__init__()
        out_dim = cfg.action_horizon * cfg.action_dim
        self.time_kernel = nn.Parameter(torch.zeros(cfg.time_dim // 2, 1))
        self.cond_fc1 = nn.Linear(cfg.time_dim, 2 * cfg.time_dim)
        self.cond_fc2 = nn.Linear(2 * cfg.time_dim, cfg.time_dim)
        self.input_fc = nn.Linear(cfg.time_dim + obs_dim + out_dim, cfg.hidden_dim)
        self.block_norms = nn.ModuleList(
            nn.LayerNorm(cfg.hidden_dim, eps=1e-6) if cfg.use_layer_norm else nn.Identity() for _ in range(cfg.num_blocks)
        )
        self.block_fc1 = nn.ModuleList(nn.Linear(cfg.hidden_dim, 4 * cfg.hidden_dim) for _ in range(cfg.num_blocks))
        self.block_fc2 = nn.ModuleList(nn.Linear(4 * cfg.hidden_dim, cfg.hidden_dim) for _ in range(cfg.num_blocks))
        self.output_fc = nn.Linear(cfg.hidden_dim, out_dim)

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        f = (t * torch.tensor(2 * math.pi, dtype=torch.float32)) @ self.time_kernel.T
        return torch.cat([torch.cos(f), torch.sin(f)], dim=-1)

    def condition(self, t: torch.Tensor) -> torch.Tensor:
        return self.cond_fc2(F.silu(self.cond_fc1(self.time_features(t))))

    def forward(self, obs: torch.Tensor, x: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor] = None):
        if cond is None:
            cond = self.condition(t)
        h = self.input_fc(torch.cat([cond.expand(*x.shape[:-1], -1), obs, x], dim=-1))
        for norm, fc1, fc2 in zip(self.block_norms, self.block_fc1, self.block_fc2):
            h = h + fc2(F.silu(fc1(norm(h))))
        return self.output_fc(F.silu(h))


class DiffusionActionHead(nn.Module):
    """DDPM head: ``diffusion_steps`` reverse steps with the cosine schedule, clipping to ±max_action."""

    def __init__(self, cfg: HeadConfig, dim: int):
        super().__init__()
        self.cfg = cfg
        self.map_head = MAPHead(dim) if cfg.use_map else None
        self.diffusion_model = ScoreNetwork(cfg, dim)
        betas, alphas, alpha_hats = diffusion_schedule(cfg.diffusion_steps)
        f32 = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))
        self.register_buffer("betas", f32(betas), persistent=False)
        self.register_buffer("alphas", f32(alphas), persistent=False)
        self.register_buffer("alpha_hats", f32(alpha_hats), persistent=False)
        self.register_buffer("coef_1", f32(np.float32(1) / np.sqrt(alphas)), persistent=False)
        self.register_buffer("coef_2", f32((np.float32(1) - alphas) / np.sqrt(np.float32(1) - alpha_hats)), persistent=False)
        self.register_buffer("sigma", f32(np.sqrt(betas)), persistent=False)
        self.register_buffer("sqrt_one_minus_ahat", f32(np.sqrt(np.float32(1) - alpha_hats)), persistent=False)

    @property
    def flat_dim(self) -> int:
        return self.cfg.action_horizon * self.cfg.action_dim

    def embed(self, group: TokenGroup) -> torch.Tensor:
        return pool(self.map_head, group)

    def predict(
        self,
        embedding: torch.Tensor,
        initial_noise: torch.Tensor,
        step_noise: Sequence[torch.Tensor],
        embodiment_action_dim: Optional[int] = None,
    ) -> torch.Tensor:
        """Run the reverse process for the embedding(s) of one window step.

        ``embedding`` (..., D); ``initial_noise`` (..., horizon*dim); ``step_noise`` one tensor of that
        shape per step, in sampling order (step index T-1 first).  Returns (..., horizon, action_dim).
        """
        c = self.cfg
        steps = c.diffusion_steps
        if len(step_noise) != steps:
            raise ValueError(f"expected {steps} step-noise tensors, got {len(step_noise)}")
        net = self.diffusion_model
        obs = embedding.float()
        x = initial_noise.float()
        keep = None
        if embodiment_action_dim is not None and embodiment_action_dim < c.action_dim:
            keep = torch.zeros(c.action_horizon, c.action_dim, dtype=torch.bool, device=x.device)
            keep[:, :embodiment_action_dim] = True
            keep = keep.reshape(-1)
        t_all = torch.arange(steps, dtype=torch.float32, device=x.device)[:, None]
        cond_all = net.condition(t_all)  # time conditioning for every step, computed once
        for i, k in enumerate(range(steps - 1, -1, -1)):
            eps = net(obs, x, None, cond=cond_all[k])
            x = self.coef_1[k] * (x - self.coef_2[k] * eps)
            z = step_noise[i].float()
            if k > 0:
                x = x + self.sigma[k] * z
            x = x.clamp(-c.max_action, c.max_action)
            if keep is not None:
                x = torch.where(keep, x, self.sqrt_one_minus_ahat[k] * z)
        return x.reshape(*x.shape[:-1], c.action_horizon, c.action_dim)


def build_head(cfg: HeadConfig, dim: int) -> nn.Module:
    if cfg.kind == "diffusion":
        return DiffusionActionHead(cfg, dim)
    if cfg.kind == "continuous":
        return ContinuousActionHead(cfg, dim)
    raise ValueError(f"unknown head kind {cfg.kind!r}")
