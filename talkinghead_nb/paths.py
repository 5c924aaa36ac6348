"""Where the project's folders are: ``emotions/`` and ``models/`` beside the package, or where the environment says."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def emotions_dir() -> Path:
    """``$TALKINGHEAD_NB_EMOTIONS``, else the project's ``emotions/`` folder."""
    return Path(os.environ.get("TALKINGHEAD_NB_EMOTIONS") or PROJECT_ROOT / "emotions")


def models_dir() -> Path:
    """``$TALKINGHEAD_NB_MODELS``, else the project's ``models/`` folder."""
    return Path(os.environ.get("TALKINGHEAD_NB_MODELS") or PROJECT_ROOT / "models")
