"""Live mode: the animator, the frame pump, sessions, and the live server (SillyTavern-Extras talkinghead API).

Names load on first use, so ``import talkinghead_nb.live`` (or a widget that needs only the pump) does not load the
web stack; ``LiveServer`` brings in FastAPI and uvicorn when it is first asked for.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_WHERE = {
    "Animator": "animator",
    "AnimatorSettings": "settings",
    "load_settings": "settings",
    "FramePump": "pump",
    "Viewer": "pump",
    "CommandError": "session",
    "LiveSession": "session",
    "SessionNotFound": "session",
    "LiveServer": "server",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
