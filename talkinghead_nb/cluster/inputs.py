"""Which characters a batch renders: a folder, a list file, a glob pattern, or paths given in Python."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}  # non-PNGs get reported
LIST_SUFFIXES = {".txt", ".lst"}


def find_characters(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> dict[str, Path]:
    """``{name: file}`` of the characters in ``inputs``: a folder (its images, not its subfolders), a list file
    (``.txt``: one path a line, relative to the list's folder; ``#`` starts a comment), a glob pattern
    (``chars/*.png``), or an iterable of paths. A name is the file's stem, and names the character's output folder,
    so two files with the same stem are refused."""
    paths = _paths(inputs)
    if not paths:
        raise ValueError(f"no characters found in {inputs}: give a folder of PNGs, a .txt list of paths, or a glob "
                         "pattern such as 'chars/*.png'")
    found: dict[str, Path] = {}
    for path in paths:
        if path.stem in found:
            raise ValueError(f"{found[path.stem]} and {path} would both write to the folder {path.stem!r}: rename "
                             "one of them")
        found[path.stem] = path
    return found


def _paths(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if not isinstance(inputs, (str, os.PathLike)):
        return [Path(p) for p in inputs]
    path = Path(inputs)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                      and not p.name.startswith("."))
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
        return [path.parent / line for line in lines if line]
    if path.is_file():
        return [path]
    if glob.has_magic(str(inputs)):
        return sorted(Path(p) for p in glob.glob(str(inputs)) if Path(p).is_file())
    raise ValueError(f"{inputs} is neither a folder, a list file (.txt), an image nor a glob pattern: check the path")
