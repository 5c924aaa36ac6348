"""The five THA3 networks, for both the ``separable`` and the ``standard`` architecture.

Each network's ``forward`` returns a dict of named tensors: the first entry is what the next stage consumes, the
rest are intermediate images that the teaching view shows. Images are (N, 4, H, W) in [-1, 1], linear RGB + alpha.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import (
    Activation,
    ResBlock,
    alpha_head,
    blend,
    blend_rgb,
    color_head,
    conv_block,
    down_block,
    grid_head,
    leaky_relu,
    relu,
    tile_pose,
    up_block,
    warp,
)


def _channels(start: int, image_size: int, size: int, maximum: int = 512) -> int:
    """Channel count at a resolution: doubles each time the resolution halves, capped."""
    return min(start * (image_size // size), maximum)


class PoseEncoderDecoder(nn.Module):
    """Strided-conv encoder, a bottleneck that sees the pose, transposed-conv decoder (no skip connections).

    The body of the eyebrow decomposer, the eyebrow morphing combiner and the face morpher.
    """

    def __init__(self, image_size: int, in_channels: int, num_pose_params: int, bottleneck_size: int, *,
                 separable: bool, start_channels: int = 64, num_bottleneck_blocks: int = 6):
        super().__init__()
        def ch(size: int) -> int:
            return _channels(start_channels, image_size, size)
        self.downsample_blocks = nn.ModuleList(
            [conv_block(in_channels, start_channels, 3, relu, separable=separable)])
        size = image_size
        while size > bottleneck_size:
            self.downsample_blocks.append(down_block(ch(size), ch(size // 2), relu, separable=separable))
            size //= 2
        c = ch(size)
        self.bottleneck_blocks = nn.ModuleList(
            [conv_block(c + num_pose_params, c, 3, relu, separable=separable)]
            + [ResBlock(c, relu, separable=separable) for _ in range(num_bottleneck_blocks - 1)])
        self.upsample_blocks = nn.ModuleList()
        while size < image_size:
            self.upsample_blocks.append(up_block(ch(size), ch(size * 2), relu, separable=separable))
            size *= 2

    def forward(self, image: Tensor, pose: Tensor | None = None) -> Tensor:
        x = image
        for block in self.downsample_blocks:
            x = block(x)
        if pose is not None:
            x = _cat(x, tile_pose(pose, x.shape[-1]))
        for block in self.bottleneck_blocks:
            x = block(x)
        for block in self.upsample_blocks:
            x = block(x)
        return x


def _down_activation(act: Activation, separable: bool) -> Activation:
    # The reference builds the standard (non-separable) rotator's and editor's downsampling blocks with its
    # default block arguments, i.e. plain ReLU instead of the leaky ReLU used everywhere else in them.
    # The published standard weights were trained that way, so we keep it.
    return act if separable else relu


class _ResizeEncoder(nn.Module):
    """Encoder and residual bottleneck shared by the rotator's and the editor's bodies; subclasses add a decoder."""

    def __init__(self, image_size: int, in_channels: int, bottleneck_size: int, first_kernel: int, *,
                 separable: bool, start_channels: int, num_bottleneck_blocks: int = 6,
                 act: Activation = leaky_relu):
        super().__init__()
        self.image_size, self.start_channels, self.act = image_size, start_channels, act
        self.downsample_blocks = nn.ModuleList(
            [conv_block(in_channels, start_channels, first_kernel, act, separable=separable)])
        size = image_size
        while size > bottleneck_size:
            self.downsample_blocks.append(
                down_block(self.ch(size), self.ch(size // 2), _down_activation(act, separable), separable=separable))
            size //= 2
        self.bottleneck_blocks = nn.ModuleList(
            ResBlock(self.ch(size), act, separable=separable) for _ in range(num_bottleneck_blocks))
        self.bottleneck_size = size

    def ch(self, size: int) -> int:
        return _channels(self.start_channels, self.image_size, size)

    def decoder_sizes(self) -> list[int]:
        """The resolutions the decoder steps up from, bottleneck first."""
        sizes, size = [], self.bottleneck_size
        while size < self.image_size:
            sizes.append(size)
            size *= 2
        return sizes


class ResizeEncoderDecoder(_ResizeEncoder):
    """Encoder, residual bottleneck, nearest-upsample + conv decoder: the body of the face/body rotator."""

    def __init__(self, image_size: int, in_channels: int, bottleneck_size: int, *, separable: bool):
        super().__init__(image_size, in_channels, bottleneck_size, 7, separable=separable, start_channels=64)
        self.upsample_blocks = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                          conv_block(self.ch(size), self.ch(size * 2), 3, self.act, separable=separable))
            for size in self.decoder_sizes())

    def forward(self, x: Tensor) -> Tensor:
        for block in (*self.downsample_blocks, *self.bottleneck_blocks, *self.upsample_blocks):
            x = block(x)
        return x


class ResizeUNet(_ResizeEncoder):
    """U-Net with skip connections and nearest upsampling: the body of the editor."""

    def __init__(self, image_size: int, in_channels: int, bottleneck_size: int, *, separable: bool):
        super().__init__(image_size, in_channels, bottleneck_size, 3, separable=separable, start_channels=32)
        self.upsample_blocks = nn.ModuleList(
            conv_block(self.ch(size) + self.ch(size * 2), self.ch(size * 2), 3, self.act, separable=separable)
            for size in self.decoder_sizes())
        self.double_resolution = nn.Upsample(scale_factor=2, mode="nearest")

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The bottleneck's output, and the skip connections in the order the decoder takes them."""
        skips = []
        for block in self.downsample_blocks:
            x = block(x)
            skips.append(x)
        for block in self.bottleneck_blocks:
            x = block(x)
        return x, skips[-2::-1]

    def forward(self, x: Tensor) -> Tensor:
        x, skips = self.encode(x)
        for block, skip in zip(self.upsample_blocks, skips, strict=True):
            x = block(_cat(self.double_resolution(x), skip))
        return x


class EyebrowDecomposer(nn.Module):
    """Splits the 128×128 eyebrow crop into an eyebrow layer and the face behind it (depends on the image only)."""

    def __init__(self, separable: bool):
        super().__init__()
        self.body = PoseEncoderDecoder(128, 4, 0, 16, separable=separable)
        self.background_layer_alpha = alpha_head(64)
        self.background_layer_color_change = color_head(64)
        self.eyebrow_layer_alpha = alpha_head(64)
        self.eyebrow_layer_color_change = color_head(64)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        f = self.body(image)
        return {
            "eyebrow_layer": blend(self.eyebrow_layer_alpha(f), image, self.eyebrow_layer_color_change(f)),
            "background_layer": blend(
                self.background_layer_alpha(f), self.background_layer_color_change(f), image),
        }


class EyebrowMorphingCombiner(nn.Module):
    """Warps and recolours the eyebrow layer for the 12 eyebrow parameters and lays it over the background."""

    def __init__(self, separable: bool):
        super().__init__()
        self.body = PoseEncoderDecoder(128, 8, 12, 16, separable=separable)
        self.morphed_eyebrow_layer_grid_change = grid_head(64)
        self.morphed_eyebrow_layer_alpha = alpha_head(64)
        self.morphed_eyebrow_layer_color_change = color_head(64)
        # Trained, but the THA3 poser composites with the morphed layer's own alpha instead.
        self.combine_alpha = alpha_head(64)

    def forward(self, background_layer: Tensor, eyebrow_layer: Tensor, pose: Tensor) -> dict[str, Tensor]:
        f = self.body(_cat(background_layer, eyebrow_layer), pose)
        warped = warp(eyebrow_layer, self.morphed_eyebrow_layer_grid_change(f))
        morphed = blend(self.morphed_eyebrow_layer_alpha(f), self.morphed_eyebrow_layer_color_change(f), warped)
        return {
            "eyebrow_image": blend_rgb((morphed[:, 3:4] + 1) / 2, morphed, background_layer),
            "morphed_eyebrow_layer": morphed,
        }


class FaceMorpher(nn.Module):
    """Moves irises and mouth by warping, then repaints eyes and mouth (27 face parameters, 192×192 crop)."""

    def __init__(self, separable: bool):
        super().__init__()
        self.body = PoseEncoderDecoder(192, 4, 27, 24, separable=separable)
        self.iris_mouth_grid_change = grid_head(64)
        self.iris_mouth_color_change = color_head(64)
        self.iris_mouth_alpha = alpha_head(64)
        self.eye_color_change = color_head(64)
        self.eye_alpha = alpha_head(64)
        if not separable:
            # The standard face morpher's weights keep the encoder-decoder's blocks at the top level.
            self._register_load_state_dict_pre_hook(_prefix_body_keys)

    def forward(self, image: Tensor, pose: Tensor) -> dict[str, Tensor]:
        f = self.body(image, pose)
        iris_mouth_warped = warp(image, self.iris_mouth_grid_change(f))
        iris_mouth = blend(self.iris_mouth_alpha(f), self.iris_mouth_color_change(f), iris_mouth_warped)
        return {
            "face_image": blend(self.eye_alpha(f), self.eye_color_change(f), iris_mouth),
            "iris_mouth_warped": iris_mouth_warped,
            "iris_mouth_image": iris_mouth,
        }


def _prefix_body_keys(state_dict: dict, prefix: str, *args) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        if rest.startswith(("downsample_blocks.", "bottleneck_blocks.", "upsample_blocks.")):
            state_dict[f"{prefix}body.{rest}"] = state_dict.pop(key)


class FaceBodyRotator(nn.Module):
    """At 256×256: turns head, neck and body two ways at once, by warping and by direct synthesis."""

    def __init__(self, separable: bool):
        super().__init__()
        self.encoder_decoder = ResizeEncoderDecoder(256, 4 + 6, 32, separable=separable)
        self.direct_creator = color_head(64)
        self.grid_change_creator = grid_head(64)

    def forward(self, image: Tensor, pose: Tensor) -> dict[str, Tensor]:
        f = self.encoder_decoder(_cat(image, tile_pose(pose, image.shape[-1])))
        grid_change = self.grid_change_creator(f)
        return {
            "warped_image": warp(image, grid_change),
            "grid_change": grid_change,
            "direct_image": self.direct_creator(f),
        }


class Editor(nn.Module):
    """At 512×512: refines the upscaled rotation, warping the full-resolution image and repainting where needed."""

    def __init__(self, separable: bool):
        super().__init__()
        self.body = ResizeUNet(512, 4 + 4 + 2 + 6, 64, separable=separable)
        self.color_change_creator = color_head(32)
        self.alpha_creator = alpha_head(32, 4)
        self.grid_change_creator = grid_head(32)

    def forward(self, original: Tensor, warped: Tensor, grid_change: Tensor, pose: Tensor) -> dict[str, Tensor]:
        f = self.body(_cat(original, warped, grid_change, tile_pose(pose, original.shape[-1])))
        output_grid_change = grid_change + self.grid_change_creator(f)
        output_warped = warp(original, output_grid_change)
        color_change = self.color_change_creator(f)
        color_alpha = self.alpha_creator(f)
        return {
            "image": blend(color_alpha, color_change, output_warped),
            "editor_warped_image": output_warped,
            "editor_color_change": color_change,
            "editor_color_alpha": color_alpha,
            "editor_grid_change": output_grid_change,
        }


def _cat(*tensors: Tensor) -> Tensor:
    return torch.cat(tensors, dim=1)
