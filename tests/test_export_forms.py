"""The forms handed to OpenVINO compute what our networks compute (their speed is bench/roofline.py's business)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from talkinghead_nb.engine.blocks import conv_block, relu
from talkinghead_nb.engine.export_forms import (
    ConcatFreeUNet,
    HeadView,
    PhaseConvTranspose,
    SplitInputBlock,
    export_form,
)
from talkinghead_nb.engine.networks import Editor, EyebrowMorphingCombiner, FaceBodyRotator, FaceMorpher
from talkinghead_nb.engine.openvino_backend import EXAMPLE_SHAPES

NETWORKS = {"eyebrow_morphing_combiner": EyebrowMorphingCombiner, "face_morpher": FaceMorpher,
            "two_algo_face_body_rotator": FaceBodyRotator, "editor": Editor}


def _random(module: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return module.eval()


def _inputs(*shapes: tuple[int, ...], seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=generator) * 2 - 1 for shape in shapes]


@pytest.mark.parametrize("size", [(5, 7), (24, 24)])
def test_phase_form_equals_the_depthwise_transposed_convolution(size):
    transposed = _random(nn.ConvTranspose2d(6, 6, 4, 2, 1, groups=6, bias=False), seed=0)
    (x,) = _inputs((2, 6, *size))
    with torch.no_grad():
        expected, got = transposed(x), PhaseConvTranspose(transposed)(x)
    assert got.shape == expected.shape == (2, 6, 2 * size[0], 2 * size[1])
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("separable", [True, False])
def test_split_input_block_equals_the_block_on_the_concatenation(separable):
    block = _random(conv_block(5 + 3, 4, 3, relu, separable=separable), seed=2)
    a, b = _inputs((1, 5, 9, 9), (1, 3, 9, 9))
    split = SplitInputBlock(block, 5)
    with torch.no_grad():
        assert (split(a, b) - block(torch.cat([a, b], dim=1))).abs().max().item() <= 1e-5
        # Before the norm too, which would hide a wrong scale or offset per channel.
        split.rest = nn.Identity()
        convolutions = block[:2] if separable else block[:1]
        assert (split(a, b) - convolutions(torch.cat([a, b], dim=1))).abs().max().item() <= 1e-5


def test_split_input_block_refuses_a_block_it_cannot_split():
    with pytest.raises(ValueError, match="cannot split"):
        SplitInputBlock(nn.Sequential(nn.Conv2d(8, 4, 3, padding=1, bias=True), nn.ReLU()), 5)


@pytest.mark.parametrize("precision", ["f32", "bf16"])
@pytest.mark.parametrize("separable", [True, False])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_each_export_form_computes_what_the_network_computes(name, separable, precision):
    network = _random(NETWORKS[name](separable=separable), seed=3)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    form = export_form(network, precision)
    for seed in (1, 2):  # twice: the shared heads remember their last input, and must not answer with it
        inputs = _inputs(*EXAMPLE_SHAPES[name], seed=seed)
        with torch.no_grad():
            expected, got = network(*inputs), form(*inputs)
        for output, tensor in expected.items():
            # Summed in another order; a warp turns a 1e-7 change of its offsets into up to ~1e-4 in its image.
            tolerance = 1e-5 if "grid" in output else 1e-3
            assert (got[output] - tensor).abs().max().item() <= tolerance, output
    assert all(torch.equal(v, network.state_dict()[k]) for k, v in before.items())  # the original is untouched


def test_the_forms_are_the_ones_described():
    combiner, editor = EyebrowMorphingCombiner(separable=True), Editor(separable=True)
    def transposed(network):
        return [m for m in network.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert transposed(combiner) and not transposed(export_form(combiner, "bf16"))
    assert transposed(export_form(combiner, "f32"))  # in f32 the transposed kernel is the faster one
    assert any(isinstance(m, PhaseConvTranspose) for m in export_form(combiner, "bf16").modules())
    assert isinstance(export_form(editor, "f32").body, ConcatFreeUNet)
    assert sum(isinstance(m, HeadView) for m in export_form(editor, "f32").children()) == 3  # colour, alpha, grid
    standard = FaceMorpher(separable=False)
    assert len(transposed(export_form(standard, "bf16"))) == len(transposed(standard)) > 0  # full ones stay as they are
