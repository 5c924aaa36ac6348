"""Effects on rendered frames: alpha kept, batches, float16, frame-rate independence, chain JSON and its errors, and the
effects panel without a kernel."""

from __future__ import annotations

import io
import json
import math
import time

import numpy as np
import pytest
import torch
from PIL import Image

from talkinghead_nb.effects import (
    DEFAULT_CHAIN,
    EFFECTS,
    MAX_EFFECTS,
    PRESETS,
    EffectChain,
    EffectError,
    documentation,
    from_rgba_array,
    make_step,
    parse_chain,
    to_display,
    to_rgba_array,
)
from talkinghead_nb.imaging import tensor_to_rgba
from talkinghead_nb.widgets.effects_panel import EffectsPanel

H, W, MARGIN = 40, 56, 10  # not square, so that rows and columns cannot be swapped unnoticed
TRANSLUCENT = {"hologram"}  # effects whose point is to lower the character's opacity
MOVING = {"scanlines": {"speed": 40.0}}  # parameters that make an animated effect move (its defaults may stand still)
SPILLING = [name for name, effect in EFFECTS.items() if "spill" in effect.params]


def character(n: int = 1, seed: int = 0) -> torch.Tensor:
    """Random light colours, opaque in the middle, a soft edge, and a colourless transparent margin around."""
    g = torch.Generator().manual_seed(seed)
    frames = 0.3 + 0.7 * torch.rand(n, 4, H, W, generator=g)  # bright enough to bloom
    alpha = torch.zeros(H, W)
    alpha[MARGIN:-MARGIN, MARGIN:-MARGIN] = 1.0
    alpha[MARGIN - 1, MARGIN:-MARGIN] = 0.5
    frames[:, 3] = alpha
    frames[:, :3] *= (alpha > 0)
    return frames


def single(name: str, **params) -> EffectChain:
    return EffectChain((make_step(name, params),))


@pytest.mark.parametrize("name", EFFECTS)
def test_every_effect_keeps_the_background_transparent_and_colourless(name):
    frames = character(2)
    out = single(name).apply(frames, [0.4, 3.3])
    transparent = frames[:, 3:] == 0
    assert torch.equal(out[:, 3:][transparent], frames[:, 3:][transparent])
    assert torch.equal(out[:, :3][transparent.expand(-1, 3, -1, -1)], frames[:, :3][transparent.expand(-1, 3, -1, -1)])
    if name in TRANSLUCENT:
        assert (out[:, 3] <= frames[:, 3]).all() and (out[:, 3] < frames[:, 3]).any()
    else:
        assert torch.equal(out[:, 3], frames[:, 3])
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", SPILLING)
def test_spill_lets_an_effect_reach_the_background(name):
    frames = character()
    out = single(name, spill=True).apply(frames, 0.4)
    transparent = frames[:, 3] == 0
    assert (out[:, 3][transparent] > 0.01).any()
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", EFFECTS)
def test_every_effect_changes_an_opaque_picture(name):
    frames = 0.3 + 0.2 * torch.rand(1, 4, H, W, generator=torch.Generator().manual_seed(1))
    frames[:, :3, 8:32, 12:44] = 1.0  # something bright to bloom
    frames[:, 3] = 1.0
    assert (single(name).apply(frames, 0.4) - frames).abs().amax() > 0.05


@pytest.mark.parametrize("name", EFFECTS)
def test_a_batch_is_its_frames_one_by_one(name):
    frames, times = character(3), [0.1, 0.77, 2.5]
    chain = single(name, **MOVING.get(name, {}))
    batch = chain.apply(frames, times)
    for i, t in enumerate(times):
        torch.testing.assert_close(batch[i:i + 1], chain.apply(frames[i:i + 1], t), atol=1e-5, rtol=0)
    torch.testing.assert_close(chain.apply(frames, 0.77)[1], batch[1], atol=1e-5, rtol=0)  # one time for all


@pytest.mark.parametrize("name", EFFECTS)
def test_float16_gives_the_float32_picture(name):
    frames = character(2)
    try:
        half = single(name).apply(frames.half(), 0.4)
    except RuntimeError as e:  # an operation without a float16 kernel on this device
        pytest.skip(f"float16 {name} is not supported by torch {torch.__version__} on the CPU: {e}")
    assert half.dtype == torch.float16
    reference = single(name).apply(frames, 0.4)
    assert (half.float() - reference).abs().mean() < 2e-3
    assert (half.float() - reference).abs().amax() < 0.1  # a few pixels at sharp edges round the other way


@pytest.mark.parametrize("name", [name for name, effect in EFFECTS.items() if effect.animated])
def test_animated_effects_depend_on_the_time_not_on_the_frame_rate(name):
    frames, chain = character(), single(name, **MOVING.get(name, {}))
    at_end = {}
    for fps in (10, 25, 60):
        for k in range(2 * fps + 1):  # a player stepping through two seconds
            shown = chain.apply(frames, k / fps)
        at_end[fps] = shown
    assert torch.equal(at_end[10], at_end[60]) and torch.equal(at_end[25], at_end[60])
    assert (chain.apply(frames, 2.0) - chain.apply(frames, 2.37)).abs().amax() > 0.05


def test_still_effects_ignore_the_time_and_animated_ones_say_so():
    frames = character()
    for name, effect in EFFECTS.items():
        if not effect.animated:
            assert torch.equal(single(name).apply(frames, 0.0), single(name).apply(frames, 5.0))
    assert not EffectChain().animated and not single("bloom").animated
    assert PRESETS["vhs"].animated and single("hologram").animated


def test_the_empty_chain_is_the_identity_at_no_cost():
    frames = character()
    assert EffectChain().apply(frames, 1.0) is frames
    assert parse_chain([]).apply(frames) is frames and parse_chain({"effects": []}) == EffectChain()


def test_display_conversions_reuse_the_engines():
    engine = torch.rand(2, 4, 16, 24) * 2.2 - 1.1
    frames = to_display(engine)
    assert frames.shape == engine.shape and frames.min() >= 0 and frames.max() <= 1
    assert np.array_equal(to_rgba_array(frames), tensor_to_rgba(engine))  # no effects, no change
    rgba = to_rgba_array(frames)
    assert np.array_equal(to_rgba_array(from_rgba_array(rgba)), rgba)
    assert np.array_equal(to_rgba_array(from_rgba_array(rgba[0])), rgba[:1])


def test_bad_frames_and_times_are_refused():
    chain, frames = single("tint"), character(2)
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        chain.apply(frames[:, :3], 0.0)
    with pytest.raises(ValueError, match="one per frame"):
        chain.apply(frames, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        chain.apply(frames, math.nan)
    assert torch.equal(chain.apply(frames, np.float32(0.5)), chain.apply(frames, torch.tensor([0.5, 0.5])))


@pytest.mark.parametrize(("data", "expected"), [
    ([{"name": "blom"}], ["effect 1", "unknown effect 'blom'", "did you mean 'bloom'?"]),
    ([{"name": "tint"}, {"name": "bloom", "strenght": 1}], ["effect 2", "bloom has no parameter 'strenght'",
                                                             "did you mean 'strength'?"]),
    ([{"name": "bloom", "strength": "a lot"}], ["bloom.strength must be a number between 0 and 3", "'a lot'"]),
    ([{"name": "bloom", "strength": True}], ["bloom.strength must be a number between 0 and 3"]),
    ('[{"name": "bloom", "strength": NaN}]', ["bloom.strength must be between 0 and 3, got nan"]),
    ('[{"name": "bloom", "radius": Infinity}]', ["bloom.radius must be between 1 and 64 px, got inf"]),
    ([{"name": "scanlines", "speed": 1e9}], ["scanlines.speed must be between -200 and 200 px/s"]),
    ([{"name": "bloom", "spill": 1}], ["bloom.spill must be true or false, got 1"]),
    ([{"name": "vhs", "wobble": -1, "band": 2}], ["vhs.wobble must be between 0 and 40 px", "vhs.band"]),
    ([{"name": "bloom"}] * (MAX_EFFECTS + 1), [f"at most {MAX_EFFECTS} effects, got {MAX_EFFECTS + 1}"]),
    ({"name": "bloom"}, ["a JSON list such as"]),
    ("bloom", ["not valid JSON"]),
    (42, ["a JSON list such as", "got 42"]),
    ([{"strength": 1}, "bloom"], ["effect 1 must be an object with a \"name\"", "effect 2 must be"]),
])
def test_a_bad_chain_names_the_effect_the_parameter_and_the_range(data, expected):
    with pytest.raises(EffectError) as caught:
        parse_chain(data)
    assert isinstance(caught.value, ValueError)
    for text in expected:
        assert text in str(caught.value)


def test_a_chain_with_thousands_of_problems_gets_a_short_error_that_counts_the_rest():
    data = [{"name": "bloom", **{f"knob{i}": 1 for i in range(1000)}} for _ in range(MAX_EFFECTS)]
    for bad in (data, json.dumps(data)):  # 240 KB of JSON: it used to come back as a 1.4 MB message
        with pytest.raises(EffectError) as caught:
            parse_chain(bad)
        message = str(caught.value)
        assert len(message) < 1000 and message.endswith(f"… and {MAX_EFFECTS * 1000 - 5} more problems")
        assert message.startswith("effect 1: bloom has no parameter 'knob0'") and message.count("no parameter") == 5
    with pytest.raises(EffectError, match=r"^bloom has no parameter 'knob0'.*… and 995 more problems$"):
        make_step("bloom", {f"knob{i}": 1 for i in range(1000)})


def test_parameters_left_out_keep_their_defaults_and_json_round_trips():
    chain = parse_chain('{"effects": [{"name": "bloom", "strength": 1}, {"name": "scanlines", "spill": true}]}')
    assert chain.steps[0].params["strength"] == 1.0 and chain.steps[0].params["radius"] == 12
    assert chain.steps[1].params["spill"] is True
    for example in (chain, DEFAULT_CHAIN, *PRESETS.values()):
        assert parse_chain(json.dumps(example.to_json())) == example
        assert parse_chain({"effects": example.to_json()}) == example
    assert 3 <= len(DEFAULT_CHAIN) <= 4 and {"crt", "hologram", "vhs", "dreamy"} <= set(PRESETS)


def test_chains_are_edited_by_new_chains():
    chain = EffectChain().appended("bloom").appended("tint", {"amount": 0.5})
    assert [s.name for s in chain.steps] == ["bloom", "tint"]
    assert chain.updated(1, {"hue": 200}).steps[1].params == {"saturation": 0.3, "hue": 200.0, "amount": 0.5}
    assert chain.removed(0).to_json() == chain.to_json()[1:]
    with pytest.raises(EffectError, match="tint.hue must be between 0 and 360"):
        chain.updated(1, {"hue": 400})


def test_documentation_lists_every_parameter_with_its_range():
    docs = documentation()
    assert set(docs) == set(EFFECTS)
    for name, effect in EFFECTS.items():
        assert docs[name]["doc"] and set(docs[name]["parameters"]) == set(effect.params)
        for entry in docs[name]["parameters"].values():
            assert {"default", "min", "max", "unit", "doc"} <= set(entry) and entry["doc"]
            assert entry["min"] <= entry["default"] <= entry["max"]
    json.dumps(docs)  # serialisable, to be served as is


# ---- the panel ----------------------------------------------------------------------------------------------------

def picture() -> np.ndarray:
    return to_rgba_array(character(seed=3))[0]


def preview(panel: EffectsPanel) -> np.ndarray:
    assert panel.wait_rendered()
    return np.asarray(Image.open(io.BytesIO(panel.preview.value)))


@pytest.fixture
def panel():
    panel = EffectsPanel(picture())
    yield panel
    panel.close()


def test_the_panel_previews_the_chain_as_it_is_built(panel):
    assert np.array_equal(preview(panel), picture()) and len(panel.chain) == 0
    panel.picker.value = "effect:tint"
    assert panel.chain.steps[0].name == "tint" and panel.picker.value == ""
    tinted = preview(panel)
    assert np.abs(tinted.astype(int) - picture()).max() > 20
    assert np.array_equal(tinted, to_rgba_array(panel.chain.apply(from_rgba_array(picture())))[0])
    saturation = panel.rows.children[0].children[1]
    assert saturation.description == "saturation" and "tint.saturation: 0 … 2" in saturation.tooltip
    saturation.value = 1.0
    assert panel.chain.steps[0].params["saturation"] == 1.0
    assert not np.array_equal(preview(panel), tinted)
    assert parse_chain(panel.json.value) == panel.chain
    assert parse_chain(json.dumps(panel.chain.to_json())) == panel.chain


def test_the_panel_adds_presets_removes_effects_and_loads_json(panel):
    panel.picker.value = "preset:crt"
    assert panel.chain == PRESETS["crt"] and len(panel.rows.children) == len(PRESETS["crt"])
    panel.rows.children[0].children[0].children[1].click()  # the first row's remove button
    assert panel.chain == PRESETS["crt"].removed(0)
    checkbox = panel.rows.children[0].children[-1]  # chromatic aberration's spill
    checkbox.value = True
    assert panel.chain.steps[0].params["spill"] is True
    panel.json.value = '[{"name": "vignette", "strength": 0.9}]'
    panel.load_button.click()
    assert panel.chain == parse_chain([{"name": "vignette", "strength": 0.9}]) and "loaded 1" in panel.status.value
    panel.json.value = '[{"name": "vignete"}]'
    panel.load_button.click()
    assert "did you mean &#x27;vignette&#x27;" in panel.status.value and len(panel.chain) == 1
    panel.clear_button.click()
    assert panel.chain == EffectChain() and np.array_equal(preview(panel), picture())


def test_the_panel_takes_a_pil_image_and_an_initial_chain():
    panel = EffectsPanel(Image.fromarray(picture(), "RGBA"), DEFAULT_CHAIN)
    try:
        assert panel.chain == DEFAULT_CHAIN and len(panel.rows.children) == len(DEFAULT_CHAIN)
        panel.time.value = 3.0
        assert preview(panel).shape == (H, W, 4) and "3 effect(s)" in panel.timing.value
    finally:
        panel.close()


def test_dragging_a_slider_does_not_queue_previews(panel, monkeypatch):
    from talkinghead_nb.widgets import effects_panel

    def slow(frames):  # a preview that takes as long as a big chain on a slow machine
        time.sleep(0.05)
        return to_rgba_array(frames)
    monkeypatch.setattr(effects_panel, "to_rgba_array", slow)
    panel.add_effect("vignette")
    assert panel.wait_rendered()
    rendered = panel.renders
    strength = panel.rows.children[0].children[1]
    for value in np.linspace(0, 1, 25):
        strength.value = float(value)
    assert panel.wait_rendered()
    assert panel.renders - rendered <= 3  # of 25 changes: the one in flight and the newest
    assert panel.chain.steps[0].params["strength"] == 1.0
    assert np.array_equal(preview(panel), to_rgba_array(panel.chain.apply(from_rgba_array(picture())))[0])
