"""Render the emotion templates of a character as a set of expression sprites, and export them to a folder."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import write_bytes, write_json
from .character import Character
from .emotions import EMOTIONS, EmotionTemplates
from .encoding import encode_png
from .lazy import lazy_exports

if TYPE_CHECKING:  # the engine loads only where something renders (the driver of a batch renders nothing)
    from .engine import Poser

SPRITE_PNG_LEVEL = 3  # deflate level of sprite files: a little smaller than the live feed's, still fast


# ``export_many`` (sprites of many characters, on worker processes or Ray) lives in ``cluster`` and loads on first use.
# The name is relative to this module's package (".cluster" → talkinghead_nb.cluster); the module keeps its own dir().
__getattr__, _ = lazy_exports(__name__, {"export_many": ".cluster"})


def emotions_document(templates: EmotionTemplates, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """What ``_emotions.json`` beside the sprites holds: the template of each emotion rendered."""
    return {name: templates.pose(name) for name in names}


def default_batch_size(poser: Poser) -> int:
    """One pose at a time on the CPU (measured on 2 cores: batching is slower per frame there) and eight on a GPU,
    where batching amortises the per-kernel launch cost."""
    return 8 if poser.device.type == "cuda" else 1


def iter_sprites(poser: Poser, character: Character, templates: EmotionTemplates, names: Sequence[str],
                 batch_size: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(emotion, (512, 512, 4) uint8)`` pairs, rendered ``batch_size`` poses at a time; an unknown name fails
    before anything is rendered."""
    batch_size = batch_size or default_batch_size(poser)
    vectors = [templates.vector(n) for n in names]
    for start in range(0, len(names), batch_size):
        batch = poser.render_array(character, vectors[start:start + batch_size])
        yield from zip(names[start:start + batch_size], batch, strict=True)


def render_emotions(poser: Poser, character: Character, templates: EmotionTemplates,
                    names: Sequence[str] = EMOTIONS, *, batch_size: int | None = None,
                    progress: bool = False) -> dict[str, np.ndarray]:
    """``{emotion: (512, 512, 4) uint8}`` for ``names``; ``progress`` shows a progress bar (a widget in Jupyter)."""
    sprites = iter_sprites(poser, character, templates, names, batch_size)
    if progress:
        from tqdm.auto import tqdm
        sprites = tqdm(sprites, total=len(names), desc=f"emotions of {character.name}", unit="emotion")
    return dict(sprites)


@dataclass
class SpriteExport:
    folder: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    images: dict[str, np.ndarray] = field(default_factory=dict)

    def contact_sheet(self, **options):
        """A figure of the sprites rendered in this export."""
        from .plots import contact_sheet
        return contact_sheet(self.images, title=f"{self.folder.name}: {len(self.images)} sprites", **options)

    def __str__(self) -> str:
        return (f"{self.folder}: {len(self.written)} sprite(s) written, {len(self.skipped)} kept as they were, "
                f"in {self.seconds:.1f} s")


def export_sprites(poser: Poser, character: Character, folder: str | os.PathLike, templates: EmotionTemplates,
                   names: Sequence[str] = EMOTIONS, *, overwrite: bool = False, progress: bool = True) -> SpriteExport:
    """Write ``<emotion>.png`` (512×512 RGBA) for each name and ``_emotions.json`` (the templates used) into
    ``folder``. Existing sprites are kept unless ``overwrite``; every file is written atomically."""
    from tqdm.auto import tqdm

    for name in names:
        templates.vector(name)  # an unknown name fails before any file is written
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    export = SpriteExport(folder)
    start = time.perf_counter()
    todo = [n for n in names if overwrite or not (folder / f"{n}.png").exists()]
    export.skipped = [n for n in names if n not in todo]
    sprites = iter_sprites(poser, character, templates, todo)
    # A context, so that the bar ends its line even when interrupted: a message after it starts on a line of its own.
    with tqdm(sprites, total=len(todo), desc=f"sprites of {character.name}", unit="sprite",
              disable=not progress) as bar:
        for name, rgba in bar:
            write_bytes(folder / f"{name}.png", encode_png(rgba, level=SPRITE_PNG_LEVEL))
            export.images[name] = rgba
            export.written.append(name)
    write_json(folder / "_emotions.json", emotions_document(templates, names))
    export.seconds = time.perf_counter() - start
    return export
