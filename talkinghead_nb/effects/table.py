"""The one table of effects: each effect's name, function, documentation and parameters with their defaults and
ranges. Parsing, the widget and the documentation all ask it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from . import ops


@dataclass(frozen=True)
class Param:
    """A number in ``[low, high]``, or a switch (true/false) when the default is a bool."""

    default: float | bool
    low: float
    high: float
    unit: str
    doc: str

    @property
    def switch(self) -> bool:
        return isinstance(self.default, bool)


@dataclass(frozen=True)
class Effect:
    name: str
    function: Callable[..., Tensor]
    doc: str
    params: dict[str, Param]
    animated: bool = False  # moves with time: a still pose still needs new frames


def _number(default: float, low: float, high: float, doc: str, unit: str = "") -> Param:
    return Param(default, low, high, unit, doc)


SPILL = Param(False, 0, 1, "", "let the effect reach transparent pixels (off: only over the character)")
PX, PX_S, DEG = "px", "px/s", "°"

EFFECTS: dict[str, Effect] = {effect.name: effect for effect in (
    Effect("bloom", ops.bloom, "a soft glow around the bright parts", {
        "strength": _number(0.35, 0, 3, "brightness of the glow"),
        "threshold": _number(0.7, 0, 0.95, "luminance above which pixels glow"),
        "radius": _number(12, 1, 64, "spread of the glow (Gaussian σ)", PX),
        "spill": SPILL,
    }),
    Effect("chromatic_aberration", ops.chromatic_aberration, "red and blue pulled apart, as through a cheap lens", {
        "shift": _number(2, 0, 20, "how far red and blue move from green, in opposite directions", PX),
        "angle": _number(0, -180, 180, "direction in which red moves (0: right, 90: down)", DEG),
        "spill": SPILL,
    }),
    Effect("vignette", ops.vignette, "darker towards the corners of the frame", {
        "strength": _number(0.5, 0, 1, "darkening in the corners (1: black)"),
        "radius": _number(0.5, 0, 1.5, "where the darkening starts (0: the centre, 1: the corners)"),
        "softness": _number(0.5, 0.01, 1.5, "distance over which the darkening fades in (1: centre to corner)"),
    }),
    Effect("scanlines", ops.scanlines, "horizontal dark lines as on a CRT, optionally scrolling", {
        "spacing": _number(3, 2, 64, "distance from line to line", PX),
        "strength": _number(0.35, 0, 1, "darkness of the lines"),
        "speed": _number(0, -200, 200, "scrolling speed (positive: up)", PX_S),
        "spill": SPILL,
    }, animated=True),
    Effect("noise", ops.noise, "analog grain over the character, a new pattern `rate` times a second", {
        "amount": _number(0.08, 0, 1, "strength of the grain"),
        "rate": _number(24, 1, 60, "new grain patterns per second, whatever the frame rate", "Hz"),
    }, animated=True),
    Effect("vhs", ops.vhs, "a worn video tape: rows wobble and jitter, a bright tracking band rolls down", {
        "wobble": _number(3, 0, 40, "amplitude of the slow horizontal wave", PX),
        "waves": _number(2, 0.1, 20, "waves over the height of the frame"),
        "speed": _number(0.5, -10, 10, "how fast the wave travels (waves per second)", "Hz"),
        "jitter": _number(1, 0, 10, f"random shift of each row, new {ops.VHS_JITTER_RATE:g} times a second", PX),
        "band": _number(0.6, 0, 1, "strength of the tracking band (more jitter, brighter)"),
        "band_speed": _number(0.15, 0, 2, "passes of the tracking band per second", "Hz"),
        "spill": SPILL,
    }, animated=True),
    Effect("tint", ops.tint, "desaturate, then colour as through a gel (sepia by default)", {
        "saturation": _number(0.3, 0, 2, "0: grey, 1: unchanged, 2: twice as colourful"),
        "hue": _number(35, 0, 360, "hue of the gel (0: red, 120: green, 240: blue)", DEG),
        "amount": _number(0.35, 0, 1, "strength of the gel"),
    }),
    Effect("hologram", ops.hologram, "a translucent, tinted projection with moving bright lines and flicker", {
        "opacity": _number(0.7, 0.05, 1, "the character's opacity (its alpha is multiplied by it)"),
        "hue": _number(185, 0, 360, "hue of the projection", DEG),
        "tint": _number(0.6, 0, 1, "how far the colours go to the projection's hue"),
        "line_spacing": _number(6, 2, 64, "distance from line to line", PX),
        "line_speed": _number(30, -200, 200, "speed of the lines (positive: up)", PX_S),
        "lines": _number(0.4, 0, 1, "contrast of the lines, in opacity and brightness"),
        "flicker": _number(0.15, 0, 1, "how much the opacity flickers"),
    }, animated=True),
)}


def documentation() -> dict[str, dict[str, Any]]:
    """``{effect: {"doc", "animated", "parameters": {name: {"default", "min", "max", "unit", "doc"}}}}``; a switch
    has min 0 (false) and max 1 (true) and the unit ``"switch"``."""
    return {e.name: {"doc": e.doc, "animated": e.animated, "parameters": {
        key: {"default": p.default, "min": p.low, "max": p.high, "unit": "switch" if p.switch else p.unit, "doc": p.doc}
        for key, p in e.params.items()}} for e in EFFECTS.values()}
