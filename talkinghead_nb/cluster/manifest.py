"""The record of a batch (``_batch.json`` in its output folder) and the atomic publication of each character's
folder: a reader (or a resumed run) sees a character's folder complete, or not at all."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ..atomic import write_bytes, write_json
from .worker import DONE

MANIFEST = "_batch.json"
PARTIAL = ".partial-"  # in the names of folders being written; a run that was killed leaves them, the next removes
LOCK = ".batch.lock"  # host:pid of the run writing into the folder


class Manifest:
    """``{"characters": {name: {source, status, findings, seconds, folder, error, sprites, worker, finished}}}``,
    written after every character, so that a killed run loses at most the characters it was rendering."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.path = out_dir / MANIFEST
        self.characters: dict[str, dict] = {}
        if self.path.exists():
            try:
                self.characters = json.loads(self.path.read_text(encoding="utf-8"))["characters"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{self.path} is damaged ({e}); delete it to render every character again") from None

    def status(self, name: str, sprites: Sequence[str]) -> str | None:
        """``done`` (and its folder holds ``<sprite>.png`` for each of ``sprites``), ``failed``, or None (never
        finished, or its folder was changed since)."""
        entry = self.characters.get(name)
        if entry is None:
            return None
        if entry["status"] == DONE and not all((self.out_dir / name / f"{s}.png").is_file() for s in sprites):
            return None
        return entry["status"]

    def record(self, result: dict) -> dict:
        """Enter a worker's answer (its files already published) and write the manifest."""
        entry = {key: result[key] for key in ("source", "status", "findings", "error", "worker")}
        entry.update(seconds=round(result["seconds"], 3), sprites=len(result["files"]),
                     folder=str(self.out_dir / result["name"]) if result["status"] == DONE else None,
                     finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self.characters[result["name"]] = entry
        write_json(self.path, {"characters": self.characters})
        return entry


class BatchLock:
    """``out_dir/.batch.lock`` while a run writes there, so that a second run into the same folder stops with a
    message instead of removing the first's half-written folders. A lock left by a run that died (its process is
    gone) is taken over."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOCK
        self.mine = f"{socket.gethostname()}:{os.getpid()}"

    def __enter__(self) -> BatchLock:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.mine)
            return self
        raise RuntimeError(f"could not lock {self.path.parent} (other runs keep starting there); try again")

    def __exit__(self, *exc) -> None:
        if self._holder() == self.mine:
            self.path.unlink(missing_ok=True)

    def _holder(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None

    def _take_over_if_stale(self) -> None:
        holder = self._holder()
        if holder is None:  # just released
            return
        host, _, pid = holder.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit() or _alive(int(pid)):
            raise RuntimeError(f"another batch run ({holder or 'starting'}) is writing into {self.path.parent}: "
                               "wait for it to finish, or write elsewhere; if no run is going on (it ran on another "
                               f"machine and died), delete {self.path}")
        if self._holder() == holder:  # still the dead run's: taken over (a rival may have done it first)
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def remove_partials(out_dir: Path) -> None:
    """Folders a killed run was writing into."""
    for path in out_dir.glob(f".*{PARTIAL}*"):
        shutil.rmtree(path, ignore_errors=True)


def publish(out_dir: Path, name: str, files: dict[str, bytes], emotions: dict) -> Path:
    """Write ``files`` and ``_emotions.json`` into a folder beside ``out_dir/name``, then rename it into place (an
    older folder of that name is replaced whole)."""
    target = out_dir / name
    partial = Path(tempfile.mkdtemp(prefix=f".{name}{PARTIAL}", dir=out_dir))
    try:
        for filename, data in files.items():
            write_bytes(partial / filename, data)
        write_json(partial / "_emotions.json", emotions)
        os.chmod(partial, 0o755)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}{PARTIAL}old-", dir=out_dir))
            os.replace(target, old / name)
            os.replace(partial, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target
