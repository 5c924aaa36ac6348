"""Render the emotion templates of a character as a set of expression sprites."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .character import Character
from .emotions import EMOTIONS, EmotionTemplates
from .engine import Poser


def render_emotions(poser: Poser, character: Character, templates: EmotionTemplates,
                    names: Sequence[str] = EMOTIONS, *, batch_size: int | None = None) -> dict[str, np.ndarray]:
    """``{emotion: (512, 512, 4) uint8}``, rendered ``batch_size`` poses at a time.

    By default one at a time on the CPU (measured on 2 cores: 0.92 s/frame at batch 1, 1.12 s at batch 4) and
    eight at a time on a GPU, where batching amortises the per-kernel launch cost.
    """
    if batch_size is None:
        batch_size = 8 if poser.device.type == "cuda" else 1
    vectors = [templates.vector(n) for n in names]  # fails early on an unknown name
    images: dict[str, np.ndarray] = {}
    for start in range(0, len(names), batch_size):
        batch = poser.render_array(character, vectors[start:start + batch_size])
        images.update(zip(names[start:start + batch_size], batch, strict=True))
    return images
