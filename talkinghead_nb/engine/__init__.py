"""Our THA3 implementation: building blocks, the five networks, and the poser."""

from .backend_choice import BACKEND_NAMES, BackendChoice, choose_backend
from .poser import STAGE_OUTPUTS, Poser, resolve_device, resolve_variant

__all__ = ["BACKEND_NAMES", "BackendChoice", "Poser", "STAGE_OUTPUTS", "choose_backend", "resolve_device",
           "resolve_variant"]
