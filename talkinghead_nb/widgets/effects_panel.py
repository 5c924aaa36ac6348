"""Building an effect chain in a notebook: add effects or presets, one row of sliders per effect, a preview of the
chain on a picture that follows every change, and the chain as JSON to copy or to load. The logic is in
:mod:`talkinghead_nb.effects`; this is its skin.

The preview renders in a background thread and is coalesced: while one renders, changes only replace the pending
request, so dragging a slider never queues a backlog of stale previews.
"""

from __future__ import annotations

import html
import json
import time

import ipywidgets as W
import numpy as np
from PIL import Image

from ..effects import EFFECTS, PRESETS, EffectChain, EffectError, Param, from_rgba_array, parse_chain, to_rgba_array
from ..encoding import encode_png
from .latest import LatestOnly, PreviewPanel

CHOOSE = ""
SLIDER_STEPS = 200  # positions of a slider between its min and max
STYLE = {"description_width": "150px"}


def label(name: str) -> str:
    """``line_speed`` → ``line speed``."""
    return name.replace("_", " ")


def tooltip(effect: str, key: str, spec: Param) -> str:
    if spec.switch:
        return f"{effect}.{key}: true or false — {spec.doc}"
    unit = f" {spec.unit}" if spec.unit else ""
    return f"{effect}.{key}: {spec.low:g} … {spec.high:g}{unit} — {spec.doc}"


def _rgba(frame: np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGBA"))
    if frame.ndim != 3 or frame.shape[2] != 4 or frame.dtype != np.uint8:
        raise ValueError(f"the frame must be an (H, W, 4) uint8 RGBA array, got {frame.dtype} {frame.shape}")
    return frame


class EffectsPanel(PreviewPanel):
    """``EffectsPanel(frame)`` and display it; ``panel.chain`` is the chain built. Everything the controls do is also
    a method, for scripts and tests."""

    def __init__(self, frame: np.ndarray | Image.Image, chain: EffectChain | None = None, *, preview_size: int = 384):
        self.frames = from_rgba_array(_rgba(frame))
        self._chain = EffectChain()
        self._build(preview_size)
        self.renders = 0
        self._renderer = LatestOnly(self._render, lambda e: self._say(f"preview failed: {type(e).__name__}: {e}",
                                                                      error=True), name="talkinghead-effects-panel")
        self.chain = chain or EffectChain()

    # ---- layout ---------------------------------------------------------------------------------------------------

    def _build(self, preview_size: int) -> None:
        options = [("add an effect or a preset…", CHOOSE)]
        options += [(f"+ {label(name)}: {effect.doc}", f"effect:{name}") for name, effect in EFFECTS.items()]
        options += [(f"preset {name} (replaces the chain)", f"preset:{name}") for name in PRESETS]
        self.picker = W.Dropdown(options=options, value=CHOOSE, layout=W.Layout(width="330px"))
        self.picker.observe(self._on_pick, "value")
        self.clear_button = W.Button(description="remove all", icon="trash", layout=W.Layout(width="120px"))
        self.clear_button.on_click(lambda _: setattr(self, "chain", EffectChain()))
        self.time = W.FloatSlider(value=0.0, min=0.0, max=10.0, step=0.02, description="time (s)", style=STYLE,
                                  tooltip="t: the time in seconds shown to animated effects (scanlines, noise, vhs, "
                                          "hologram)", layout=W.Layout(width="460px"))
        self.time.observe(lambda _: self._request(), "value")
        self.rows = W.VBox(layout=W.Layout(width="480px"))
        self.json = W.Textarea(layout=W.Layout(width="480px", height="110px"),
                               placeholder='[{"name": "bloom", "strength": 0.6}]')
        self.load_button = W.Button(description="load JSON", icon="upload", layout=W.Layout(width="120px"),
                                    tooltip="replace the chain by the JSON above")
        self.load_button.on_click(lambda _: self._guard(self.load_json, self.json.value))
        self.preview = W.Image(format="png", layout=W.Layout(width=f"{preview_size}px", max_width="100%",
                                                              height="auto", border="1px solid #ccc"))
        self.timing = W.Label()
        self.status = W.HTML(layout=W.Layout(min_height="2.6em", width="100%"))
        controls = W.VBox([W.HBox([self.picker, self.clear_button]), self.time, self.rows,
                           W.HTML("<b>the chain as JSON</b>"), self.json, self.load_button],
                          layout=W.Layout(width="490px", flex="0 0 auto"))
        output = W.VBox([self.preview, self.timing], layout=W.Layout(flex="1 1 256px", max_width=f"{preview_size}px"))
        self.widget = W.VBox([W.HBox([controls, output], layout=W.Layout(flex_flow="row wrap",
                                                                        align_items="flex-start")), self.status])

    def _row(self, index: int) -> W.VBox:
        step = self._chain.steps[index]
        effect = EFFECTS[step.name]
        remove = W.Button(icon="times", tooltip=f"remove {step.name}", layout=W.Layout(width="40px"))
        remove.on_click(lambda _: self.remove(index))
        controls = []
        for key, spec in effect.params.items():
            tip = tooltip(step.name, key, spec)
            if spec.switch:
                control = W.Checkbox(value=step.params[key], description=label(key), tooltip=tip, indent=False)
            else:
                unit = f" ({spec.unit})" if spec.unit else ""
                control = W.FloatSlider(value=step.params[key], min=spec.low, max=spec.high,
                                        step=(spec.high - spec.low) / SLIDER_STEPS, description=label(key) + unit,
                                        tooltip=tip, style=STYLE, readout_format=".3g", layout=W.Layout(width="460px"))
            control.observe(lambda change, key=key: self._guard(self.set_param, index, key, change["new"]), "value")
            controls.append(control)
        title = W.HTML(f"<b title='{html.escape(effect.doc)}'>{index + 1}. {label(step.name)}</b>",
                       layout=W.Layout(width="420px"))
        return W.VBox([W.HBox([title, remove]), *controls], layout=W.Layout(border="1px solid #ddd", padding="2px"))

    # ---- the chain ------------------------------------------------------------------------------------------------

    @property
    def chain(self) -> EffectChain:
        return self._chain

    @chain.setter
    def chain(self, chain: EffectChain) -> None:
        self._chain = chain
        self.rows.children = [self._row(i) for i in range(len(chain))]
        self._changed()

    def add_effect(self, name: str) -> None:
        self.chain = self._chain.appended(name)

    def load_preset(self, name: str) -> None:
        self.chain = PRESETS[name]

    def remove(self, index: int) -> None:
        self.chain = self._chain.removed(index)

    def set_param(self, index: int, key: str, value: float | bool) -> None:
        self._chain = self._chain.updated(index, {key: value})  # the rows stay: the slider being dragged keeps focus
        self._changed()

    def load_json(self, text: str) -> None:
        self.chain = parse_chain(text)
        self._say(f"loaded {len(self._chain)} effect(s)")

    def _changed(self) -> None:
        self.status.value = ""  # the last message was about the chain before this change
        self.json.value = json.dumps(self._chain.to_json())
        self._request()

    def _on_pick(self, change) -> None:
        if change["new"] == CHOOSE:
            return
        kind, name = change["new"].split(":", 1)
        self._guard(self.add_effect if kind == "effect" else self.load_preset, name)
        self.picker.value = CHOOSE

    # ---- the preview ----------------------------------------------------------------------------------------------

    def _request(self) -> None:
        self._renderer.request((self._chain, self.time.value))

    def wait_rendered(self, timeout: float = 30.0) -> bool:
        """Block until the preview shows the current chain (for scripts and tests)."""
        return self._renderer.wait(timeout)

    def _render(self, request: tuple[EffectChain, float]) -> None:
        chain, t = request
        start = time.perf_counter()
        rgba = to_rgba_array(chain.apply(self.frames, t))[0]
        seconds = time.perf_counter() - start
        self.preview.value = encode_png(rgba)
        self.renders += 1
        self.timing.value = f"{len(chain)} effect(s): {seconds * 1e3:.1f} ms"

    # ---- plumbing -------------------------------------------------------------------------------------------------

    def _guard(self, action, *args) -> None:
        """Run a control's action; show a failure in the panel instead of raising into the widget machinery."""
        try:
            action(*args)
        except EffectError as e:
            self._say(str(e), error=True)
