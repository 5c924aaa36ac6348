"""Between the engine's linear [-1, 1] tensors, 8-bit pictures and the frames effects work on: (N, 4, H, W) sRGB in
[0, 1] with straight alpha, on the engine's device."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..imaging import linear_to_srgb


def to_display(images: Tensor) -> Tensor:
    """The engine's (N, 4, H, W) linear RGBA in [-1, 1] → sRGB [0, 1] with straight alpha, same device and dtype."""
    x = ((images + 1.0) * 0.5).clamp(0.0, 1.0)
    return torch.cat([linear_to_srgb(x[:, :3]), x[:, 3:4]], dim=1)


def to_rgba_array(frames: Tensor) -> np.ndarray:
    """(N, 4, H, W) sRGB [0, 1] → (N, H, W, 4) uint8 sRGBA. ``to_rgba_array(to_display(x))`` is byte for byte
    :func:`~talkinghead_nb.imaging.tensor_to_rgba` ``(x)`` for float32 ``x``: no effects, no change."""
    return frames.float().clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def from_rgba_array(rgba: np.ndarray, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """(H, W, 4) or (N, H, W, 4) uint8 sRGBA → (N, 4, H, W) sRGB [0, 1] frames (a picture to preview effects on)."""
    x = torch.from_numpy(np.array(rgba, dtype=np.uint8))  # a copy: the caller keeps theirs
    x = x[None] if x.ndim == 3 else x
    return x.permute(0, 3, 1, 2).to(device=device, dtype=dtype) / 255.0
