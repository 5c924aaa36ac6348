"""The effects: pure functions of a batch of frames and of the time.

Each takes ``frames``, (N, 4, H, W) sRGB in [0, 1] with straight alpha, and ``t``, (N,) float32 seconds on the frames'
device, plus its parameters as keywords (documented in ``table.py``), and returns new frames of the same shape, device
and dtype. Motion depends on ``t`` only, never on a frame counter, so every frame rate shows the same picture at the
same time. Without ``spill`` an effect changes neither the alpha of any pixel nor the colour under zero alpha.
"""

from __future__ import annotations

import colorsys
import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709 weights
BLOOM_SCALE = 4                  # the glow is blurred at a quarter of the resolution: 16× less work, same look
VHS_JITTER_RATE = 30.0           # Hz: new random row offsets this often
VHS_BAND_WIDTH = 0.06            # of the frame height
EPS = 1e-4                       # smallest alpha divided by (exact zeros stay zero)


# ---- helpers ---------------------------------------------------------------------------------------------------------

def _luma(rgb: Tensor) -> Tensor:
    return rgb[:, 0:1] * LUMA[0] + rgb[:, 1:2] * LUMA[1] + rgb[:, 2:3] * LUMA[2]


def _hue(degrees: float, like: Tensor) -> Tensor:
    """A fully saturated colour of the given hue, (1, 3, 1, 1)."""
    return like.new_tensor(colorsys.hsv_to_rgb(degrees / 360.0 % 1.0, 1.0, 1.0)).view(1, 3, 1, 1)


def _smoothstep(low: float, high: float, x: Tensor) -> Tensor:
    s = ((x - low) / max(high - low, EPS)).clamp(0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _on_character(frames: Tensor, rgb: Tensor, alpha: Tensor | None = None) -> Tensor:
    """``rgb`` (clamped) where the character is, the input's own colour where alpha is zero; alpha as given, else
    unchanged."""
    inside = frames[:, 3:] > 0
    rgb = torch.where(inside, rgb.clamp(0.0, 1.0), frames[:, :3])
    return torch.cat([rgb, frames[:, 3:] if alpha is None else alpha], dim=1)


def _premultiplied(frames: Tensor) -> Tensor:
    """(N, 4, H, W) with colour multiplied by alpha: the form in which pixels may be blurred, shifted and added."""
    return torch.cat([frames[:, :3] * frames[:, 3:], frames[:, 3:]], dim=1)


def _unpremultiply(colour: Tensor, alpha: Tensor) -> Tensor:
    return colour / alpha.clamp_min(EPS)


def _straight(colour: Tensor, alpha: Tensor) -> Tensor:
    """Frames from premultiplied colour and its alpha (the result of an effect that may spill)."""
    return torch.cat([_unpremultiply(colour, alpha).clamp(0.0, 1.0), alpha.clamp(0.0, 1.0)], dim=1)


def _shift(x: Tensor, d: float, dim: int) -> Tensor:
    """``x`` moved by ``d`` pixels along ``dim`` (2: down, 3: right), bilinear, zeros coming in."""
    def whole(k: int) -> Tensor:
        return F.pad(x, (k, -k, 0, 0) if dim == 3 else (0, 0, k, -k))  # negative padding crops
    if d == 0:
        return x
    floor = math.floor(d)
    return torch.lerp(whole(floor), whole(floor + 1), d - floor) if d != floor else whole(floor)


def _translate(x: Tensor, dx: float, dy: float) -> Tensor:
    return _shift(_shift(x, dx, 3), dy, 2)


def _shift_rows(x: Tensor, dx: Tensor) -> Tensor:
    """Every row of ``x`` moved right by its own ``dx`` (N, H) pixels, bilinear, zeros coming in."""
    n, c, h, w = x.shape
    source = torch.arange(w, device=x.device, dtype=dx.dtype) - dx[..., None]  # (N, H, W)
    left = source.floor()

    def tap(column: Tensor) -> Tensor:
        inside = ((column >= 0) & (column < w)).to(x.dtype)[:, None]
        index = column.clamp(0, w - 1).long()[:, None].expand(n, c, h, w)
        return x.gather(3, index) * inside
    return torch.lerp(tap(left), tap(left + 1), (source - left).to(x.dtype)[:, None])


def _blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of every channel; zeros beyond the edges."""
    radius = max(1, math.ceil(3.0 * sigma))
    kernel = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x)
    c = x.shape[1]
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)


def _stripes(frames: Tensor, t: Tensor, spacing: float, speed: float) -> Tensor:
    """(N, 1, H, 1): 1 on the lines, 0 half way between (a cosine), every ``spacing`` pixels, moving up at ``speed``
    pixels per second."""
    y = torch.arange(frames.shape[2], device=frames.device, dtype=torch.float32)
    offset = (speed * t) % spacing
    phase = (y[None, :] + offset[:, None]) * (2.0 * math.pi / spacing)
    return (0.5 + 0.5 * torch.cos(phase)).to(frames.dtype)[:, None, :, None]


@functools.lru_cache(maxsize=8)
def _texture(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A fixed (H, W) uniform random texture: the same on every device and every run."""
    return torch.rand(h, w, generator=torch.Generator().manual_seed(14)).to(device=device, dtype=dtype)


def _noise(t: Tensor, rate: float, h: int, w: int, like: Tensor) -> Tensor:
    """(N, H, W) uniform noise in [0, 1) that holds still for 1/``rate`` s and then jumps: the fixed texture at an
    offset chosen by hashing the step number, so two frames at the same time see the same noise."""
    step = torch.floor(t * rate).long()
    offsets = [(step * 2654435761 + salt * 40503) % 2147483647 for salt in (1, 2)]
    rows = (torch.arange(h, device=like.device) + offsets[0][:, None]) % h
    cols = (torch.arange(w, device=like.device) + offsets[1][:, None]) % w
    return _texture(h, w, like.device, like.dtype)[rows[:, :, None], cols[:, None, :]]


# ---- the effects -----------------------------------------------------------------------------------------------------

def bloom(frames: Tensor, t: Tensor, *, strength: float, threshold: float, radius: float, spill: bool) -> Tensor:
    rgb, alpha = frames[:, :3], frames[:, 3:]
    weight = ((_luma(rgb) - threshold) / (1.0 - threshold)).clamp(0.0, 1.0)
    bright = rgb * (alpha * weight)  # premultiplied: transparent pixels add no light
    h, w = frames.shape[-2:]
    small = F.avg_pool2d(bright, BLOOM_SCALE, ceil_mode=True)
    glow = F.interpolate(_blur(small, radius / BLOOM_SCALE), size=(h, w), mode="bilinear", align_corners=False)
    glow = glow * strength
    if spill:
        return _straight(rgb * alpha + glow, alpha + (1.0 - alpha) * glow.amax(1, keepdim=True).clamp(0.0, 1.0))
    return _on_character(frames, rgb + glow)


def chromatic_aberration(frames: Tensor, t: Tensor, *, shift: float, angle: float, spill: bool) -> Tensor:
    dx, dy = shift * math.cos(math.radians(angle)), shift * math.sin(math.radians(angle))
    premultiplied = _premultiplied(frames)
    red = _translate(premultiplied[:, [0, 3]], dx, dy)
    blue = _translate(premultiplied[:, [2, 3]], -dx, -dy)
    if spill:
        colour = torch.cat([red[:, :1], premultiplied[:, 1:2], blue[:, :1]], dim=1)
        return _straight(colour, torch.maximum(frames[:, 3:], torch.maximum(red[:, 1:], blue[:, 1:])))
    rgb = torch.cat([_unpremultiply(red[:, :1], red[:, 1:]), frames[:, 1:2], _unpremultiply(blue[:, :1], blue[:, 1:])],
                    dim=1)
    return _on_character(frames, rgb)


def vignette(frames: Tensor, t: Tensor, *, strength: float, radius: float, softness: float) -> Tensor:
    h, w = frames.shape[-2:]
    y = torch.linspace(-1.0, 1.0, h, device=frames.device).view(h, 1)
    x = torch.linspace(-1.0, 1.0, w, device=frames.device).view(1, w)
    distance = (x * x + y * y).sqrt() / math.sqrt(2.0)  # 0 in the centre, 1 in the corners
    shade = 1.0 - strength * _smoothstep(radius, radius + softness, distance)
    return _on_character(frames, frames[:, :3] * shade.to(frames.dtype))


def scanlines(frames: Tensor, t: Tensor, *, spacing: float, strength: float, speed: float, spill: bool) -> Tensor:
    dark = strength * _stripes(frames, t, spacing, speed)
    if not spill:
        return _on_character(frames, frames[:, :3] * (1.0 - dark))
    alpha = frames[:, 3:]
    return _straight(frames[:, :3] * alpha * (1.0 - dark), alpha + (1.0 - alpha) * dark)  # black lines over it all


def noise(frames: Tensor, t: Tensor, *, amount: float, rate: float) -> Tensor:
    grain = _noise(t, rate, frames.shape[2], frames.shape[3], frames)[:, None] - 0.5
    return _on_character(frames, frames[:, :3] + 2.0 * amount * grain)


def vhs(frames: Tensor, t: Tensor, *, wobble: float, waves: float, speed: float, jitter: float, band: float,
        band_speed: float, spill: bool) -> Tensor:
    h = frames.shape[2]
    y = torch.arange(h, device=frames.device, dtype=torch.float32)[None, :] / h  # (1, H)
    centre = (band_speed * t[:, None]) % 1.0 * (1.0 + 4 * VHS_BAND_WIDTH) - 2 * VHS_BAND_WIDTH  # rolls down
    in_band = band * torch.exp(-(((y - centre) / VHS_BAND_WIDTH) ** 2))  # (N, H)
    shake = 2.0 * _noise(t, VHS_JITTER_RATE, h, 1, y)[..., 0] - 1.0  # (N, H), one value per row
    dx = wobble * torch.sin(2.0 * math.pi * (waves * y + speed * t[:, None])) + jitter * shake * (1.0 + 4.0 * in_band)
    moved = _shift_rows(_premultiplied(frames), dx)
    colour = moved[:, :3] + 0.3 * in_band.to(frames.dtype)[:, None, :, None] * moved[:, 3:]  # the band is brighter
    if spill:
        return _straight(colour, moved[:, 3:])
    return _on_character(frames, _unpremultiply(colour, moved[:, 3:]))


def tint(frames: Tensor, t: Tensor, *, saturation: float, hue: float, amount: float) -> Tensor:
    rgb = frames[:, :3]
    rgb = torch.lerp(_luma(rgb).expand_as(rgb), rgb, saturation)
    return _on_character(frames, torch.lerp(rgb, rgb * _hue(hue, rgb), amount))


def hologram(frames: Tensor, t: Tensor, *, opacity: float, hue: float, tint: float, line_spacing: float,
             line_speed: float, lines: float, flicker: float) -> Tensor:
    rgb, alpha = frames[:, :3], frames[:, 3:]
    rgb = torch.lerp(rgb, (0.15 + 0.85 * _luma(rgb)) * _hue(hue, rgb), tint)
    stripes = _stripes(frames, t, line_spacing, line_speed)
    waver = torch.sin(2.0 * math.pi * 9.1 * t) * torch.sin(2.0 * math.pi * 2.3 * t + 1.0)  # two beating sines
    shown = (opacity * (1.0 - flicker * (0.5 + 0.5 * waver))).to(frames.dtype)[:, None, None, None]
    return _on_character(frames, rgb + 0.3 * lines * (1.0 - stripes), alpha * shown * (1.0 - lines * stripes))
