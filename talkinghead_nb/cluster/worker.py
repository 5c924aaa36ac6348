"""The worker side of a sprite batch: one engine per process (or Ray actor), and one character at a time through the
checks and the renderer into the bytes of its sprite files.

A worker reads no input file and writes no output file: the driver sends each character's bytes and writes the
sprites it gets back. So on a cluster only the engine runs remotely; inputs, outputs and the emotion templates stay
on the driver's machine.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..emotions import EmotionTemplates
from .engines import EngineSpec

DONE, FAILED = "done", "failed"


@dataclass(frozen=True)
class BatchSettings:
    """What every worker needs to render: the emotions (their poses travel with the settings, so a remote worker
    needs no emotions folder), whether to scale characters of another size, and its engine."""

    templates: EmotionTemplates
    names: tuple[str, ...]
    engine: EngineSpec
    fit: bool = False


@dataclass(frozen=True)
class Job:
    """One character to render: its name (the output folder's), where it came from, and its file's bytes."""

    name: str
    source: str
    data: bytes = field(repr=False)


def outcome(name: str, source: str, status: str, *, findings: Sequence[dict] = (), seconds: float = 0.0,
            error: str = "", files: dict[str, bytes] | None = None) -> dict:
    """A worker's answer for one character (plain data, so that it pickles and travels through Ray); ``worker`` is
    where it was made (host and process id)."""
    return {"name": name, "source": source, "status": status, "findings": list(findings), "seconds": seconds,
            "error": error, "files": files or {}, "worker": f"{socket.gethostname()}:{os.getpid()}"}


class SpriteWorker:
    """Holds one engine for the life of its process or actor, and renders characters with it."""

    def __init__(self, settings: BatchSettings):
        self.settings = settings
        self.poser = settings.engine.build()

    def render(self, job: Job) -> dict:
        """The checks, then (if they pass) the sprites as PNG bytes; a broken character or a failed render is an
        answer with status ``failed``, never an exception."""
        start = time.perf_counter()
        findings, errors = self.check(job)
        if errors:
            return outcome(job.name, job.source, FAILED, findings=findings, seconds=time.perf_counter() - start,
                           error="; ".join(f["message"] for f in errors))
        try:
            files = self._sprites(job)
        except Exception as e:  # one character's failure must not stop the others
            return outcome(job.name, job.source, FAILED, findings=findings, seconds=time.perf_counter() - start,
                           error=f"{type(e).__name__}: {e}")
        return outcome(job.name, job.source, DONE, findings=findings, seconds=time.perf_counter() - start,
                       files=files)

    def check(self, job: Job) -> tuple[list[dict], list[dict]]:
        """The project's checks (``prep.check_character``) as plain findings (passes left out), and the errors among
        them. With ``fit``, a wrong size is no error: the character is scaled onto the canvas."""
        from ..prep.checks import ERROR, PASS, WARNING, check_character
        findings = []
        for f in check_character(job.data).findings:
            level = WARNING if (f.level == ERROR and f.check == "size" and self.settings.fit) else f.level
            if level != PASS:
                message = f.message.replace("the uploaded data", job.source)  # the checks saw bytes, not the path
                findings.append({"check": f.check, "level": level, "message": message, "fix": f.advice()})
        return findings, [f for f in findings if f["level"] == ERROR]

    def _sprites(self, job: Job) -> dict[str, bytes]:
        from ..character import load_character
        from ..encoding import encode_png
        from ..sprites import SPRITE_PNG_LEVEL, iter_sprites
        character = load_character(job.data, fit=self.settings.fit, name=job.name)
        return {f"{name}.png": encode_png(rgba, level=SPRITE_PNG_LEVEL)
                for name, rgba in iter_sprites(self.poser, character, self.settings.templates, self.settings.names)}


# ---- the process pool's side: one worker per process, made by the pool's initializer ----------------------------

_worker: SpriteWorker | None = None


def start_process_worker(settings: BatchSettings) -> None:
    global _worker
    _worker = SpriteWorker(settings)


def render_in_process(job: Job) -> dict:
    return _worker.render(job)
