"""Our THA3 implementation: building blocks, the five networks, and the poser."""

from .poser import STAGE_OUTPUTS, Poser, resolve_device, resolve_variant

__all__ = ["Poser", "STAGE_OUTPUTS", "resolve_device", "resolve_variant"]
