"""Building blocks shared by the five THA3 networks.

Attribute names and the order of layers inside each ``nn.Sequential`` mirror the published state dicts, so the
weights load unchanged. A "separable" convolution is a depthwise k×k convolution followed by a pointwise 1×1 one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor, nn
from torch.nn import functional as F

Activation = Callable[[], nn.Module]


def relu() -> nn.Module:
    return nn.ReLU()


def leaky_relu() -> nn.Module:
    return nn.LeakyReLU(negative_slope=0.1)


def conv_layers(
    cin: int, cout: int, kernel: int, *, separable: bool, stride: int = 1, bias: bool = False,
    transpose: bool = False,
) -> list[nn.Module]:
    """The convolution(s) of one layer: one full conv, or a depthwise + pointwise pair."""
    padding = 1 if kernel == 4 else kernel // 2
    conv_cls = nn.ConvTranspose2d if transpose else nn.Conv2d
    if not separable:
        return [conv_cls(cin, cout, kernel, stride, padding, bias=bias)]
    return [
        conv_cls(cin, cin, kernel, stride, padding, bias=False, groups=cin),
        nn.Conv2d(cin, cout, 1, bias=bias),
    ]


def conv(cin: int, cout: int, kernel: int, *, separable: bool, bias: bool = False) -> nn.Module:
    """A stride-1 convolution as a single module (the pair is wrapped in a Sequential)."""
    layers = conv_layers(cin, cout, kernel, separable=separable, bias=bias)
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


def conv_block(
    cin: int, cout: int, kernel: int, act: Activation, *, separable: bool, stride: int = 1,
    transpose: bool = False,
) -> nn.Sequential:
    """Convolution(s), instance norm, activation, as one flat Sequential."""
    return nn.Sequential(
        *conv_layers(cin, cout, kernel, separable=separable, stride=stride, transpose=transpose),
        nn.InstanceNorm2d(cout, affine=True),
        act(),
    )


def down_block(cin: int, cout: int, act: Activation, *, separable: bool) -> nn.Sequential:
    return conv_block(cin, cout, 4, act, separable=separable, stride=2)


def up_block(cin: int, cout: int, act: Activation, *, separable: bool) -> nn.Sequential:
    return conv_block(cin, cout, 4, act, separable=separable, stride=2, transpose=True)


class ResBlock(nn.Module):
    def __init__(self, channels: int, act: Activation, *, separable: bool):
        super().__init__()
        self.resnet_path = nn.Sequential(
            conv(channels, channels, 3, separable=separable),
            nn.InstanceNorm2d(channels, affine=True),
            act(),
            conv(channels, channels, 3, separable=separable),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.resnet_path(x)


def alpha_head(cin: int, cout: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=True), nn.Sigmoid())


def color_head(cin: int, cout: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=True), nn.Tanh())


def grid_head(cin: int) -> nn.Conv2d:
    return nn.Conv2d(cin, 2, 3, padding=1, bias=False)


def blend(alpha: Tensor, top: Tensor, bottom: Tensor) -> Tensor:
    """``top`` where alpha is 1, ``bottom`` where it is 0."""
    return top * alpha + bottom * (1 - alpha)


def blend_rgb(alpha: Tensor, top: Tensor, bottom: Tensor) -> Tensor:
    """Blend the colour channels; keep the alpha channel of ``bottom``."""
    return torch.cat([blend(alpha, top[:, :3], bottom[:, :3]), bottom[:, 3:4]], dim=1)


def tile_pose(pose: Tensor, size: int) -> Tensor:
    """(N, C) pose → (N, C, size, size) constant feature maps."""
    return pose[:, :, None, None].expand(-1, -1, size, size)


@lru_cache(maxsize=16)
def _identity_grid(n: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """What ``F.affine_grid`` gives for the identity (align_corners=False), built from the same ``linspace`` so the
    values are identical, but from ops that every exporter knows (OpenVINO's has no ``affine_grid``)."""
    def axis(steps: int) -> Tensor:
        return torch.linspace(-1.0, 1.0, steps, device=device, dtype=dtype) * (steps - 1) / steps
    ys, xs = torch.meshgrid(axis(h), axis(w), indexing="ij")
    return torch.stack([xs, ys], dim=-1).unsqueeze(0).expand(n, h, w, 2)


def warp(image: Tensor, grid_change: Tensor) -> Tensor:
    """Resample ``image`` at the identity grid plus a per-pixel offset given as (N, 2, H, W)."""
    n, _, h, w = image.shape
    # torch.compile traces through the cache anyway (and warns about it): give it the plain function.
    identity_grid = _identity_grid.__wrapped__ if torch.compiler.is_compiling() else _identity_grid
    grid = identity_grid(n, h, w, image.device, image.dtype) + grid_change.permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
