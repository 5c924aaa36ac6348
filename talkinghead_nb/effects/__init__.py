"""Effects on rendered frames (a postprocessor downstream of the engine): bloom, chromatic aberration, vignette,
scanlines, noise, VHS, tint and hologram, on the engine's device, batched, as pure functions of the time.

    frames = to_display(poser.render_tensor(character, poses))     # (N, 4, H, W) sRGB [0, 1], straight alpha
    rgba = to_rgba_array(parse_chain(json_text).apply(frames, t))  # (N, H, W, 4) uint8
"""

from .chain import DEFAULT_CHAIN, MAX_EFFECTS, PRESETS, EffectChain, EffectError, Step, make_step, parse_chain
from .display import from_rgba_array, to_display, to_rgba_array
from .table import EFFECTS, Effect, Param, documentation

__all__ = ["DEFAULT_CHAIN", "EFFECTS", "MAX_EFFECTS", "PRESETS", "Effect", "EffectChain", "EffectError", "Param",
           "Step", "documentation", "from_rgba_array", "make_step", "parse_chain", "to_display", "to_rgba_array"]
