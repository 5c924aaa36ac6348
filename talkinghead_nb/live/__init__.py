"""Live mode: the animator, the frame pump, sessions, and the live server (SillyTavern-Extras talkinghead API).

Names load on first use, so ``import talkinghead_nb.live`` (or a widget that needs only the pump) does not load the
web stack; ``LiveServer`` brings in FastAPI and uvicorn when it is first asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
