"""Where the THA3 networks look on the 512×512 character: the crops they work on, as (top, left, size) in pixels.

A ground-floor fact, shared by the engine (which crops), the character checks (which tell where the face must be)
and the inspection figures (which draw the crops); it needs no model.
"""

from __future__ import annotations

Box = tuple[int, int, int]

EYEBROW_BOX: Box = (64, 192, 128)
FACE_BOX: Box = (32, 160, 192)


def describe(box: Box) -> str:
    """``rows 32–224, columns 160–352``: a box as the rows and columns it spans."""
    top, left, size = box
    return f"rows {top}–{top + size}, columns {left}–{left + size}"
