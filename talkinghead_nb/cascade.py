"""The settings cascade that the animator settings and the viseme table share: defaults, then a project file, then
per-call overrides, where one bad entry is reported by name and spoils nothing else."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar


class Mergeable(Protocol):
    def merged(self, updates: Any, source: str) -> tuple[Any, list[str]]: ...


T = TypeVar("T", bound=Mergeable)


def load_cascade(defaults: T, project_file: str | os.PathLike | None, default_file: Path,
                 overrides: Mapping[str, Any] | None, *, fallback: str) -> tuple[T, list[str]]:
    """``defaults``, then the project file (``default_file`` unless one is named; a missing default file is fine,
    a missing named one is reported), then ``overrides``. Returns the result and the problems met on the way;
    ``fallback`` says what is used when the file cannot be read ("the built-in defaults")."""
    result, problems = defaults, []
    path = Path(project_file) if project_file is not None else default_file
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append(f"{path}: not readable JSON ({e}); using {fallback}")
        else:
            result, found = result.merged(data, str(path))
            problems += found
    elif project_file is not None:
        problems.append(f"{path}: no such file; using {fallback}")
    if overrides:
        result, found = result.merged(overrides, "overrides")
        problems += found
    return result, problems
