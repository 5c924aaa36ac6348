"""Where the project's files are: ``emotions/``, ``models/`` and ``animator.json`` beside the package, or where the
environment says."""

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


def animator_settings_file() -> Path:
    """``$TALKINGHEAD_NB_ANIMATOR``, else the project's ``animator.json`` (optional: defaults apply without it)."""
    return Path(os.environ.get("TALKINGHEAD_NB_ANIMATOR") or PROJECT_ROOT / "animator.json")
