"""Octo's fine-tuning image augmentation (``finetune_config.py`` parameters, dlimp semantics), in torch.

Order: random resized crop (primary camera only) -> brightness -> contrast -> saturation -> hue,
on float images in [0, 1], clipped to [0, 1] after every op.  One parameter draw per sample and
camera, shared by all window frames and the goal image of that sample (Octo seeds per frame);
padding goal images (dropped by task augmentation) stay zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ImageAugmentation:
    crop: bool = True
    crop_scale: Tuple[float, float] = (0.8, 1.0)
    crop_ratio: Tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.1  # max delta
    contrast: Tuple[float, float] = (0.9, 1.1)
    saturation: Tuple[float, float] = (0.9, 1.1)
    hue: float = 0.05  # max delta


PRIMARY = ImageAugmentation()
WRIST = replace(PRIMARY, crop=False)


def for_camera(name: str) -> ImageAugmentation:
    """The workspace (primary) camera gets the crop; the others the colour jitter only."""
    return PRIMARY if name == "primary" else WRIST


def _uniform(n: int, lo: float, hi: float, generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * (hi - lo) + lo).to(device)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) RGB in [0, 1] -> HSV, hue in [0, 1)."""
    r, g, b = x.unbind(-3)
    maxc, _ = x.max(-3)
    minc, _ = x.min(-3)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    safe = delta.clamp_min(1e-12)
    h = torch.where(maxc == r, (g - b) / safe, torch.where(maxc == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc], -3)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv` (channel n: ``v - v s clip(min(k, 4 - k), 0, 1)``, ``k = (n + 6h) mod 6``)."""
    h, s, v = x.unbind(-3)
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device).view(3, 1, 1)
    k = (n + h.unsqueeze(-3) * 6.0) % 6.0
    f = torch.minimum(k, 4.0 - k).clamp(0, 1)
    return v.unsqueeze(-3) - (v * s).unsqueeze(-3) * f


def crop_and_resize(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``tf.image.crop_and_resize`` (bilinear, corner-aligned sampling) back to the input size.
    ``x`` (N, K, 3, H, W); ``boxes`` (N, 4) normalised [y1, x1, y2, x2]."""
    n, k, c, h, w = x.shape
    ys = torch.linspace(0, 1, h, device=x.device)
    xs = torch.linspace(0, 1, w, device=x.device)
    y1, x1, y2, x2 = boxes.unbind(-1)
    gy = 2 * (y1[:, None] + ys[None] * (y2 - y1)[:, None]) - 1  # (N, H) in align_corners coordinates
    gx = 2 * (x1[:, None] + xs[None] * (x2 - x1)[:, None]) - 1
    grid = torch.stack([gx[:, None, :].expand(n, h, w), gy[:, :, None].expand(n, h, w)], -1)
    grid = grid[:, None].expand(n, k, h, w, 2).reshape(n * k, h, w, 2)
    out = F.grid_sample(x.reshape(n * k, c, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(n, k, c, h, w)


def augment(images: torch.Tensor, aug: ImageAugmentation, generator: torch.Generator,
            keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``images`` uint8 (N, K, H, W, 3): K frames sharing one draw per row.  ``keep`` (N, K) bool:
    False marks padding frames, returned unchanged.  Returns uint8 of the same shape."""
    n = images.shape[0]
    dev = images.device
    x = images.permute(0, 1, 4, 2, 3).float() / 255.0  # (N, K, 3, H, W)
    if aug.crop:
        scale = _uniform(n, *aug.crop_scale, generator, dev)
        ratio = torch.exp(_uniform(n, math.log(aug.crop_ratio[0]), math.log(aug.crop_ratio[1]), generator, dev))
        hh = torch.sqrt(scale / ratio).clamp(0, 1)
        ww = torch.sqrt(scale * ratio).clamp(0, 1)
        y0 = torch.rand(n, generator=generator).to(dev) * (1 - hh)
        x0 = torch.rand(n, generator=generator).to(dev) * (1 - ww)
        x = crop_and_resize(x, torch.stack([y0, x0, y0 + hh, x0 + ww], -1)).clamp(0, 1)
    shape = (n, 1, 1, 1, 1)
    delta = _uniform(n, -aug.brightness, aug.brightness, generator, dev).view(shape)
    x = (x + delta).clamp(0, 1)
    factor = _uniform(n, *aug.contrast, generator, dev).view(shape)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    x = ((x - mean) * factor + mean).clamp(0, 1)
    # saturation then hue, each an HSV round trip in dlimp; an HSV -> RGB conversion with s, v in
    # [0, 1] needs no clipping, so the round trip between the two is the identity and is skipped
    sat = _uniform(n, *aug.saturation, generator, dev).view(n, 1, 1, 1)
    hue = _uniform(n, -aug.hue, aug.hue, generator, dev).view(n, 1, 1, 1)
    h, s, v = rgb_to_hsv(x).unbind(2)
    x = hsv_to_rgb(torch.stack([(h + hue) % 1.0, (s * sat).clamp(0, 1), v], 2)).clamp(0, 1)
    out = (x * 255.5).clamp(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2)  # tf.image.convert_image_dtype
    if keep is not None:
        out = torch.where(keep[:, :, None, None, None].to(dev), out, images)
    return out
