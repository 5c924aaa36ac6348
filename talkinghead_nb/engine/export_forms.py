"""Equivalent forms of our networks for a graph compiler (OpenVINO): the same function, other operations.

The torch path never uses these forms: they change the order of floating-point sums, and torch must stay bit-exact
with the reference. A compiler's own kernels round differently anyway, so for it the order does not matter, but the
choice of operation does. Measured with OpenVINO 2026.4 on this project's 4th-generation Xeon (docs/engine.md, "Speed"):

- A depthwise transposed convolution (the decoders of the face morpher and the eyebrow networks) runs in bf16 on a
  generic kernel, 15–50 ms for one layer where the f32 kernel takes 1–2 ms, which made bf16 slower than f32 on
  those networks. Written as four depthwise 3×3 convolutions, one per output phase, interleaved, it runs on the
  fast depthwise kernel: the face morpher in bf16 takes 25–45 ms instead of 92–134. In f32 that form is slower
  than the transposed kernel (face morpher 81 against 55 ms), so it is used for bf16 only.
- The editor's U-Net concatenates each upsampled feature map with its skip connection (a reference-speed
  ``Concat`` of up to 96 channels at 512×512 in bf16). The convolution after it is linear in its input channels,
  so it is computed as one convolution per input, summed, and the concatenation disappears.
- Each network ends in two to five 3×3 heads of 1–4 channels each (alpha, colour, grid offsets), all reading the
  same features: one convolution of their channels together reads those features once (editor −8 %, face morpher
  −5 to −10 % in bf16).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .networks import ResizeUNet

# ConvTranspose2d(kernel 4, stride 2, padding 1), one dimension: output 2m + r takes input m + d with the kernel
# tap below; as a correlation over input offsets d ∈ {-1, 0, +1} (position d + 1 in a 3-tap kernel).
_PHASE_TAPS = ({0: 3, 1: 1}, {1: 2, 2: 0})  # phase r → {position in the 3-tap kernel: transposed kernel tap}


def export_form(network: nn.Module, precision: str) -> nn.Module:
    """A copy of ``network`` in the forms above for an OpenVINO ``precision`` (``f32`` or ``bf16``), the same function
    to float rounding; ``network`` is untouched."""
    network = copy.deepcopy(network)
    if precision == "bf16":
        _replace(network, _is_depthwise_upsampling, PhaseConvTranspose)
    _replace(network, lambda m: isinstance(m, ResizeUNet), ConcatFreeUNet)
    _share_heads(network)
    return network


def _replace(module: nn.Module, wanted, make) -> None:
    for name, child in module.named_children():
        if wanted(child):
            setattr(module, name, make(child))
        else:
            _replace(child, wanted, make)


def _is_depthwise_upsampling(m: nn.Module) -> bool:
    return (isinstance(m, nn.ConvTranspose2d) and m.groups == m.in_channels == m.out_channels
            and m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1)
            and m.output_padding == (0, 0) and m.dilation == (1, 1) and m.bias is None)


def _conv(weight: Tensor, padding: int, *, depthwise: bool = False, bias: Tensor | None = None) -> nn.Conv2d:
    """A stride-1 convolution with these weights (a depthwise one takes one input channel per output channel)."""
    out_channels, in_channels_per_group, kernel = weight.shape[0], weight.shape[1], weight.shape[-1]
    in_channels = out_channels if depthwise else in_channels_per_group
    conv = nn.Conv2d(in_channels, out_channels, kernel, padding=padding, groups=out_channels if depthwise else 1,
                     bias=bias is not None)
    conv.weight = nn.Parameter(weight.clone(), requires_grad=False)
    if bias is not None:
        conv.bias = nn.Parameter(bias.clone(), requires_grad=False)
    return conv


class PhaseConvTranspose(nn.Module):
    """A depthwise ``ConvTranspose2d(4, stride=2, padding=1)`` as four depthwise 3×3 convolutions, one for each
    phase (row parity, column parity) of the output, interleaved into the doubled resolution."""

    def __init__(self, transposed: nn.ConvTranspose2d):
        super().__init__()
        w = transposed.weight.detach()  # (C, 1, 4, 4)
        phases = []
        for row_taps in _PHASE_TAPS:
            for column_taps in _PHASE_TAPS:
                kernel = w.new_zeros(w.shape[0], 1, 3, 3)
                for py, ky in row_taps.items():
                    for px, kx in column_taps.items():
                        kernel[:, :, py, px] = w[:, :, ky, kx]
                phases.append(_conv(kernel, padding=1, depthwise=True))
        self.phases = nn.ModuleList(phases)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        y = torch.stack([phase(x) for phase in self.phases], dim=2)  # (n, c, row parity × column parity, h, w)
        return y.reshape(n, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, 2 * h, 2 * w)


class SplitInputBlock(nn.Module):
    """``block(cat(a, b))`` without the concatenation, for a block that starts with a convolution: a full
    convolution is split by input channels and the two results summed; a depthwise one is per channel, so it splits
    into two, and the pointwise convolution after it is split and summed."""

    def __init__(self, block: nn.Sequential, first_channels: int):
        super().__init__()
        layers = list(block)
        first = layers[0]
        depthwise = first.groups == first.in_channels > 1
        pointwise = layers[1] if depthwise else first
        for conv in {first, pointwise}:
            if not (isinstance(conv, nn.Conv2d) and conv.bias is None and conv.stride == (1, 1)
                    and conv.dilation == (1, 1) and conv.padding_mode == "zeros" and pointwise.groups == 1):
                raise ValueError(f"SplitInputBlock cannot split {conv}: it handles THA3's convolutions (no bias, "
                                 "stride 1, zero padding, a depthwise one followed by a full one)")
        halves = (slice(0, first_channels), slice(first_channels, None))
        self.depthwise = nn.ModuleList(
            _conv(first.weight.detach()[half], first.padding[0], depthwise=True) for half in halves if depthwise)
        self.parts = nn.ModuleList(_conv(pointwise.weight.detach()[:, half], pointwise.padding[0]) for half in halves)
        self.rest = nn.Sequential(*layers[2 if depthwise else 1:])

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if len(self.depthwise):
            a, b = self.depthwise[0](a), self.depthwise[1](b)
        return self.rest(self.parts[0](a) + self.parts[1](b))


class ConcatFreeUNet(nn.Module):
    """:class:`ResizeUNet` whose decoder blocks take the upsampled features and the skip as two inputs."""

    def __init__(self, unet: ResizeUNet):
        super().__init__()
        self.unet = unet
        self.decoder = nn.ModuleList(SplitInputBlock(block, unet.ch(size))
                                     for block, size in zip(unet.upsample_blocks, unet.decoder_sizes(), strict=True))

    def forward(self, x: Tensor) -> Tensor:
        x, skips = self.unet.encode(x)
        for block, skip in zip(self.decoder, skips, strict=True):
            x = block(self.unet.double_resolution(x), skip)
        return x


def _head_conv(module: nn.Module) -> nn.Conv2d | None:
    """The convolution of a head (a small 3×3 convolution, alone or followed by its activation), else None."""
    conv = module[0] if isinstance(module, nn.Sequential) and len(module) == 2 else module
    if (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
            and conv.stride == (1, 1) and conv.groups == 1 and conv.out_channels <= 4):
        return conv
    return None


def _share_heads(network: nn.Module) -> None:
    # Every head of a network, used or not: the eyebrow combiner's unused ``combine_alpha`` adds one channel of ten.
    heads = {name: (child, _head_conv(child)) for name, child in network.named_children()}
    heads = {name: (head, conv) for name, (head, conv) in heads.items() if conv is not None}
    if len(heads) < 2:
        return
    shared = SharedHeadConvolution([conv for _, conv in heads.values()])
    start = 0
    for name, (head, conv) in heads.items():
        stop = start + conv.out_channels
        setattr(network, name, HeadView(shared, start, stop, head[1] if isinstance(head, nn.Sequential) else None))
        start = stop


class SharedHeadConvolution(nn.Module):
    """The heads' convolutions as one (a head without a bias gets zeros). It remembers its last input and output, so
    that every head called on the same features shares one computation: fine for tracing a forward pass, which is
    all an export form is for."""

    def __init__(self, convs: list[nn.Conv2d]):
        super().__init__()
        weight = torch.cat([conv.weight.detach() for conv in convs])
        bias = torch.cat([conv.bias.detach() if conv.bias is not None else weight.new_zeros(conv.out_channels)
                          for conv in convs])
        self.conv = _conv(weight, padding=1, bias=bias)
        self._last: tuple[Tensor, Tensor] | None = None

    def forward(self, features: Tensor) -> Tensor:
        if self._last is None or self._last[0] is not features:
            self._last = (features, self.conv(features))
        return self._last[1]


class HeadView(nn.Module):
    """One head: its channels of the shared convolution, then its activation."""

    def __init__(self, shared: SharedHeadConvolution, start: int, stop: int, activation: nn.Module | None):
        super().__init__()
        self.shared, self.start, self.stop, self.activation = shared, start, stop, activation

    def forward(self, features: Tensor) -> Tensor:
        out = self.shared(features)[:, self.start:self.stop]
        return out if self.activation is None else self.activation(out)
