"""``backend="auto"``: which path it takes and why, its fallbacks, its first conversion, and a faithfulness floor.

Faithfulness: ≥ 45 dB PSNR against the exact torch path on extreme poses of two characters, per frame, computed on
premultiplied linear RGB plus alpha in [0, 1] (so that colour under fully transparent pixels, which nobody sees, does
not count).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from talkinghead_nb import pose as P
from talkinghead_nb.character import Character, example_path, load_character
from talkinghead_nb.engine import Poser
from talkinghead_nb.engine import poser as poser_module
from talkinghead_nb.engine.backend_choice import BackendChoice, bf16_units, choose_backend, normalize_backend

PSNR_FLOOR_DB = 45.0
CHARACTERS = ("crypko_00", "lambda_00")


def _pose(**values: float) -> np.ndarray:
    vector = np.zeros(P.NUM_PARAMETERS, np.float32)
    for key, value in values.items():
        vector[P.BY_KEY[key].index] = value
    return vector


def extreme_poses() -> list[np.ndarray]:
    """Every parameter at its low end, every one at its high end, the head turned fully, the mouth open wide, and
    three random poses with every parameter at one end or the other."""
    rng = np.random.default_rng(25)
    return [P.LOW.copy(), P.HIGH.copy(),
            _pose(head_x_index=1.0, head_y_index=-1.0, neck_z_index=1.0, body_y_index=-1.0, body_z_index=1.0),
            _pose(mouth_aaa_index=1.0, eye_surprised_left_index=1.0, eye_surprised_right_index=1.0,
                  head_y_index=1.0, breathing_index=1.0),
            *(np.where(rng.random(P.NUM_PARAMETERS) < 0.5, P.LOW, P.HIGH).astype(np.float32) for _ in range(3))]


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR (dB) of one (4, H, W) linear RGBA frame in [-1, 1], on premultiplied RGB + alpha in [0, 1]."""
    def premultiplied(x: torch.Tensor) -> torch.Tensor:
        x = (x.double().cpu() + 1) / 2
        return torch.cat([x[:3] * x[3:], x[3:]])
    mse = (premultiplied(image) - premultiplied(reference)).pow(2).mean().item()
    return 10 * np.log10(1 / mse) if mse else float("inf")


@pytest.fixture(scope="module")
def characters() -> list[Character]:
    return [load_character(example_path(name)) for name in CHARACTERS]


@pytest.fixture(scope="module")
def exact_frames(poser, characters) -> list[torch.Tensor]:
    return [poser.render_tensor(c, extreme_poses()) for c in characters]


@pytest.fixture(scope="module")
def openvino_cache(tmp_path_factory) -> Path:
    """A cache folder of its own for this module (the first auto poser converts into it)."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALKINGHEAD_NB_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def auto_cpu(openvino_cache) -> tuple[Poser, list[str]]:
    lines: list[str] = []
    return Poser(device="cpu", backend="auto", progress=lines.append), lines


def test_exact_is_torch_and_unknown_names_are_refused():
    assert normalize_backend("exact") == "torch"
    assert normalize_backend("auto") == "auto"
    with pytest.raises(ValueError, match="unknown backend 'fast'; choose one of: torch, openvino, openvino-bf16, auto"):
        normalize_backend("fast")


def _fake_openvino(monkeypatch, capabilities: list[str]) -> None:
    ov = pytest.importorskip("openvino")
    monkeypatch.setattr(ov.Core, "get_property", lambda self, device, key: capabilities)


def test_auto_takes_bf16_where_the_cpu_has_bf16_units(monkeypatch):
    _fake_openvino(monkeypatch, ["BF16", "FP32", "INT8"])
    got = choose_backend(torch.device("cpu"))
    assert (got.backend, got.variant, got.cuda_graphs) == ("openvino-bf16", "separable_float", False)
    assert got.reason.startswith("openvino-bf16: this CPU has bf16 units (")


def test_auto_takes_openvino_float32_elsewhere(monkeypatch):
    _fake_openvino(monkeypatch, ["FP32", "INT8"])
    assert choose_backend(torch.device("cpu")).backend == "openvino"


def test_auto_takes_torch_to_compile_it():
    got = choose_backend(torch.device("cpu"), compile=True)
    assert (got.backend, got.reason) == ("torch", "torch + torch.compile: compile=True asks for it")


def test_auto_takes_torch_without_openvino(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    got = choose_backend(torch.device("cpu"))
    assert (got.backend, got.variant) == ("torch", "separable_float")
    assert "OpenVINO is not installed (pip install openvino" in got.reason


def test_bf16_units_are_named_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu avx2 avx512_bf16 amx_bf16 amx_tile\n")
    assert bf16_units(cpuinfo) == "AMX"
    cpuinfo.write_text("flags : fpu avx2 avx512_bf16\n")
    assert bf16_units(cpuinfo) == "AVX-512 BF16"
    assert bf16_units(tmp_path / "absent") == "reported by OpenVINO"


def test_a_failed_conversion_falls_back_to_torch_with_the_reason(monkeypatch, character, poser):
    pytest.importorskip("openvino")
    from talkinghead_nb.engine import openvino_backend

    def broken(*args, **kwargs):
        raise RuntimeError("the converter met an op it does not know")

    monkeypatch.setattr(openvino_backend, "convert_networks", broken)
    monkeypatch.setattr(poser_module, "choose_backend",
                        lambda device, compile: BackendChoice("openvino", "separable_float", False, "openvino: test"))
    fallen_back = Poser(device="cpu", backend="auto")
    assert fallen_back.backend == "torch"
    assert fallen_back.backend_reason.startswith("torch: OpenVINO could not convert the networks (RuntimeError: the "
                                                 "converter met an op")
    pose = extreme_poses()[2]
    assert torch.equal(fallen_back.render_tensor(character, pose), poser.render_tensor(character, pose))
    with pytest.raises(RuntimeError, match="does not know"):  # asked for by name: no silent fallback
        Poser(device="cpu", backend="openvino")


def test_the_exact_backend_is_bit_faithful(character, poser):
    exact = Poser("separable_float", "cpu", backend="exact")
    assert (exact.backend, exact.backend_reason) == ("torch", "torch: asked for")
    pose = extreme_poses()[3]
    assert torch.equal(exact.render_tensor(character, pose), poser.render_tensor(character, pose))


def test_auto_on_this_cpu_stays_above_the_floor(auto_cpu, characters, exact_frames):
    auto, _ = auto_cpu
    assert auto.backend == choose_backend(torch.device("cpu")).backend
    assert auto.backend_reason.startswith(f"{auto.backend}:")
    for character, expected in zip(characters, exact_frames, strict=True):
        got = auto.render_tensor(character, extreme_poses())
        worst = min(psnr(g, e) for g, e in zip(got, expected, strict=True))
        assert worst >= PSNR_FLOOR_DB, f"{character.name} on {auto.backend}: {worst:.1f} dB"


def test_auto_renders_the_image_the_teaching_view_shows(auto_cpu, character):
    """The live path copies fewer outputs out of OpenVINO; the image is the same."""
    auto, _ = auto_cpu
    pose = extreme_poses()[4]
    assert torch.equal(auto.render_tensor(character, pose), auto.render_stages(character, pose)["image"])


def test_the_first_conversion_says_so_and_the_second_start_reads_the_cache(auto_cpu, openvino_cache):
    auto, lines = auto_cpu
    if auto.backend == "torch":
        pytest.skip("auto took torch here: nothing to convert")
    assert lines[0].startswith("converting the networks for OpenVINO (first time, ~20 s;")
    assert [line.split()[-2] for line in lines[1:]] == ["1/4", "2/4", "3/4", "4/4"]
    assert "editor 4/4" in lines[-1]
    cached = sorted(openvino_cache.glob("openvino/*/model.xml"))
    again: list[str] = []
    Poser(device="cpu", backend="auto", progress=again.append)
    assert again == []
    assert sorted(openvino_cache.glob("openvino/*/model.xml")) == cached
    assert not list(openvino_cache.glob("openvino/.tmp-*"))  # nothing left half-written


def test_a_damaged_cached_conversion_is_converted_again(tmp_path):
    ov = pytest.importorskip("openvino")
    from talkinghead_nb.engine.openvino_backend import _read_cached
    folder = tmp_path / "editor-0123"
    folder.mkdir()
    (folder / "model.xml").write_text("<net>cut off by a full disk")
    assert _read_cached(ov.Core(), folder) == (None, [])
    assert not folder.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_on_the_gpu_is_half_with_graphs_and_stays_above_the_floor(characters, exact_frames):
    auto = Poser(device="cuda", backend="auto")
    assert (auto.backend, auto.variant, auto.cuda_graphs) == ("torch", "separable_half", True)
    assert auto.backend_reason.startswith("torch separable_half + CUDA graphs")
    for character, expected in zip(characters, exact_frames, strict=True):
        got = torch.cat([auto.render_tensor(character, pose).float().cpu() for pose in extreme_poses()])
        worst = min(psnr(g, e) for g, e in zip(got, expected, strict=True))
        assert worst >= PSNR_FLOOR_DB, f"{character.name} in fp16: {worst:.1f} dB"
