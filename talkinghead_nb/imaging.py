"""Colour conversions between 8-bit sRGBA pictures and the engine's linear [-1, 1] tensors, and display helpers."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def srgb_to_linear(x: Tensor) -> Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Tensor) -> Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1.0 / 2.4) - 0.055)


def rgba_to_tensor(rgba: np.ndarray) -> Tensor:
    """(H, W, 4) uint8 sRGBA → (1, 4, H, W) float32 in [-1, 1], linear RGB; colour under zero alpha is cleared."""
    x = torch.from_numpy(np.ascontiguousarray(rgba)).permute(2, 0, 1).float().div_(255.0)
    x[:, x[3] == 0] = 0.0
    x[:3] = srgb_to_linear(x[:3])
    return x.mul_(2.0).sub_(1.0).unsqueeze(0)


def tensor_to_rgba(images: Tensor) -> np.ndarray:
    """(N, 4, H, W) linear [-1, 1] → (N, H, W, 4) uint8 sRGBA (the conversion is done on the tensor's device)."""
    x = ((images.float() + 1.0) * 0.5).clamp_(0.0, 1.0)
    rgb = linear_to_srgb(x[:, :3])
    out = torch.cat([rgb, x[:, 3:4]], dim=1).mul_(255.0).round_().to(torch.uint8)
    return out.permute(0, 2, 3, 1).cpu().numpy()


def visualize(tensor: Tensor) -> np.ndarray:
    """Any intermediate output of the engine, (N, C, H, W), as (N, H, W, 4) uint8 for display.

    4 channels: an RGBA image in [-1, 1]. 1 channel: a mask in [0, 1], shown grey. 2 channels: a grid offset, shown
    with hue = direction and brightness = length (scaled so that the largest offset is full brightness).
    """
    t = tensor.detach().float()
    c = t.shape[1]
    if c == 4:
        return tensor_to_rgba(t)
    if c == 1:
        grey = t.clamp(0, 1).expand(-1, 3, -1, -1)
        return _rgb_u8(grey)
    if c == 2:
        angle = (torch.atan2(t[:, 1], t[:, 0]) / (2 * torch.pi)) % 1.0
        length = t.norm(dim=1)
        length = length / length.amax(dim=(1, 2), keepdim=True).clamp_min(1e-8)
        return _rgb_u8(_hsv_to_rgb(angle, torch.ones_like(angle), length))
    raise ValueError(f"cannot display a tensor with {c} channels")


def _rgb_u8(rgb: Tensor) -> np.ndarray:
    alpha = torch.ones_like(rgb[:, :1])
    return torch.cat([rgb, alpha], 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def to_pil(rgba: np.ndarray) -> Image.Image:
    return Image.fromarray(rgba, "RGBA")
