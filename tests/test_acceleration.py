"""The speed paths compute what the plain path computes (their speed is the benchmarks' business, not the tests')."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from talkinghead_nb import pose as P
from talkinghead_nb.engine import Poser
from talkinghead_nb.engine.acceleration import CompiledOrEager, retain_freed_memory
from talkinghead_nb.engine.networks import EyebrowMorphingCombiner
from talkinghead_nb.weights import WeightsError, WeightsStore

from .test_engine_reference import POSES


def _blink_then_turn() -> list[np.ndarray]:
    """Frames that change only the rotation, then only the eyes, then only the eyebrows, then nothing."""
    base = POSES[1].copy()
    turned = base.copy()
    turned[P.BY_KEY["head_x_index"].index:P.BY_KEY["breathing_index"].index] *= -0.5
    blinked = turned.copy()
    blinked[P.BY_KEY["eye_wink_left_index"].index] = 1.0
    frowned = blinked.copy()
    frowned[P.BY_KEY["eyebrow_angry_left_index"].index] = 1.0
    return [base, turned, blinked, frowned, frowned]


def _count_calls(poser: Poser, name: str, monkeypatch) -> list[int]:
    calls: list[int] = []
    network = poser.networks[name]
    original = network.forward
    monkeypatch.setattr(network, "forward", lambda *a: calls.append(1) or original(*a))
    return calls


def test_stage_cache_skips_unchanged_stages_and_gives_identical_frames(character, monkeypatch):
    cached = Poser("separable_float", "cpu", stage_cache=True)
    plain = Poser("separable_float", "cpu", stage_cache=False)
    eyebrow_calls = _count_calls(cached, "eyebrow_morphing_combiner", monkeypatch)
    face_calls = _count_calls(cached, "face_morpher", monkeypatch)
    for frame in _blink_then_turn():
        assert torch.equal(cached.render_tensor(character, frame), plain.render_tensor(character, frame))
    # eyebrows: first frame, the frown; face: first frame, the blink, the frown.
    assert (len(eyebrow_calls), len(face_calls)) == (2, 3)


def test_stage_cache_is_per_character(poser, character):
    from talkinghead_nb.character import example_path, load_character
    other = load_character(example_path("crypko_01"))
    first = poser.render_tensor(character, POSES[1])
    second = poser.render_tensor(other, POSES[1])
    assert (first - second).abs().max() > 0.5
    assert torch.equal(poser.render_tensor(character, POSES[1]), first)


def test_compiled_network_matches_eager_network(poser, character):
    network = poser.networks["eyebrow_morphing_combiner"]
    stages = poser.render_stages(character, POSES[1])
    inputs = (stages["background_layer"], stages["eyebrow_layer"], torch.from_numpy(POSES[1][None, P.EYEBROW_SLICE]))
    compiled = CompiledOrEager(network, dynamic=False)
    with torch.inference_mode():
        expected, got = network(*inputs), compiled(*inputs)
    assert compiled.failure is None
    assert set(got) == set(expected)
    assert max((got[k] - expected[k]).abs().max().item() for k in got) <= 1e-4


def test_compile_failure_falls_back_to_eager(caplog):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no C++ compiler on this machine")

    network = EyebrowMorphingCombiner(separable=True).eval().requires_grad_(False)
    compiled = CompiledOrEager(network, backend=broken_backend)
    inputs = (torch.randn(1, 4, 128, 128), torch.randn(1, 4, 128, 128), torch.rand(1, 12))
    with torch.inference_mode():
        got = compiled(*inputs)
        expected = network(*inputs)
    assert "no C++ compiler" in compiled.failure
    assert "running it eagerly" in caplog.text
    assert torch.equal(got["eyebrow_image"], expected["eyebrow_image"])


def test_allocator_tuning_is_idempotent():
    first = retain_freed_memory()
    assert retain_freed_memory() == first


def test_a_poser_leaves_the_allocator_alone():
    """The tuning is process-wide (it keeps freed memory resident), so building and using a Poser must not do it."""
    script = ("import talkinghead_nb.engine.acceleration as A; from talkinghead_nb.engine import Poser; "
              "from talkinghead_nb.character import load_character; "
              "Poser('separable_float', 'cpu').render(load_character('crypko_00'), {}); print(A._heap_tuned)")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_replay_matches_eager_on_the_gpu(character):
    graphs = Poser("separable_float", "cuda", cuda_graphs=True)
    eager = Poser("separable_float", "cuda", cuda_graphs=False)
    frames = _blink_then_turn()
    replayed = [graphs.render_tensor(character, f) for f in frames]  # every frame after the first is a replay
    for frame, got in zip(frames, replayed, strict=True):
        assert (got - eager.render_tensor(character, frame)).abs().max().item() <= 1e-4
    assert (replayed[0] - replayed[1]).abs().max() > 0.1  # the static output really was refreshed


def _psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    mse = ((image - reference) / 2).pow(2).mean().item()
    return 10 * np.log10(1 / mse) if mse else float("inf")


def test_openvino_backends_stay_close_to_torch_and_cache_their_conversion(poser, character, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setenv("TALKINGHEAD_NB_CACHE", str(tmp_path))
    frames = _blink_then_turn()[:3]
    expected = torch.cat([poser.render_tensor(character, f) for f in frames])
    fp32 = Poser("separable_float", "cpu", backend="openvino")
    got = torch.cat([fp32.render_tensor(character, f) for f in frames])
    assert (got - expected).abs().max().item() <= 2e-2 and _psnr(got, expected) >= 80
    assert len(list((tmp_path / "openvino").glob("*/model.xml"))) == 4  # one per per-frame network
    import openvino as ov
    with monkeypatch.context() as patch:  # a CPU without bf16 units runs the f32 forms, already converted
        patch.setattr(ov.Core, "get_property", lambda self, device, key: ["FP32", "INT8"])
        Poser("separable_float", "cpu", backend="openvino-bf16")
    assert len(list((tmp_path / "openvino").glob("*/model.xml"))) == 4
    bf16 = Poser("separable_float", "cpu", backend="openvino-bf16")  # converts its own forms (export_forms)
    got = torch.cat([bf16.render_tensor(character, f) for f in frames])
    assert _psnr(got, expected) >= 45
    converted = sorted((tmp_path / "openvino").glob("*/model.xml"))
    has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert len(converted) == (8 if has_bf16 else 4)  # without bf16 units the f32 conversions serve
    Poser("separable_float", "cpu", backend="openvino-bf16")  # reads the cached conversions
    assert sorted((tmp_path / "openvino").glob("*/model.xml")) == converted
    assert not any(ov.Core().read_model(path).is_dynamic() for path in converted)  # static shapes
    assert torch.cat([bf16.render_tensor(character, f) for f in frames[:2]]).shape == (2, 4, 512, 512)


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"variant": "standard_floaty"}, WeightsError, "unknown THA3 variant 'standard_floaty'; choose one of"),
    ({"device": "gpu"}, ValueError, "unknown device 'gpu': use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ({"backend": "tensorrt"}, ValueError, "unknown backend 'tensorrt'; choose one of: torch, openvino"),
    ({"backend": "openvino", "compile": True}, ValueError, "compiles the networks itself: drop compile=True"),
    ({"cuda_graphs": True}, ValueError, "cuda_graphs=True needs a CUDA device, not cpu"),
    ({"character_cache_size": 0}, ValueError, "character_cache_size=0: at least 1"),
])
def test_bad_options_are_refused_before_any_weights_are_read(tmp_path, options, error, match):
    store = WeightsStore(tmp_path / "no-models", allow_download=False)
    with pytest.raises(WeightsError, match="no weights for standard_float"):
        Poser("standard_float", "cpu", store=store)  # what good options meet in this store
    options = {"variant": "standard_float", "device": "cpu", **options}
    with pytest.raises(error, match=match):
        Poser(options.pop("variant"), options.pop("device"), store=store, **options)
