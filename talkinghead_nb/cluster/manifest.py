"""The record of a batch (``_batch.json`` in its output folder, with ``_batch.journal`` beside it while a run goes
on), the lock that keeps a second run out, and the atomic publication of each character's folder: a reader (or a
resumed run) sees a character's folder complete, or not at all, and a folder the batch did not make is left alone."""

from __future__ import annotations

import ctypes
import errno
import fcntl
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
JOURNAL = "_batch.journal"  # one JSON line per result since _batch.json was last written
PARTIAL = ".partial-"  # in the names of folders being written; a run that was killed leaves them, the next removes
LOCK = ".batch.lock"  # flocked by the run writing into the folder; it says host:pid
MARKER = ".talkinghead-batch"  # in each folder the batch made: the files it wrote there
SYNC_SECONDS = 1.0  # the journal is fsynced at most this often: a machine's crash may lose the last second's lines
                    # (those characters are rendered again; a killed process loses none)
FOLD_SECONDS = 2.0  # _batch.json is brought up to date at most this often …
FOLD_SHARE = 20  # … and at most once per FOLD_SHARE times its last rewrite's cost, so rewrites stay ≤ 5 % of a run


class Manifest:
    """``{"characters": {name: {source, status, findings, seconds, folder, error, sprites, worker, finished}}}``.

    Recording a result appends one line to the journal (O(1); it reaches the system at once, so a killed run loses
    nothing it recorded); ``_batch.json`` is rewritten from time to time (see ``FOLD_SECONDS``), when the manifest
    is closed, and when a run finds a journal left by one that was killed. A journal's last line, cut short by a
    crash, is ignored: its character is rendered again. Use it as a context manager."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.path = out_dir / MANIFEST
        self.journal = out_dir / JOURNAL
        self.characters: dict[str, dict] = {}
        if self.path.exists():
            try:
                self.characters = json.loads(self.path.read_text(encoding="utf-8"))["characters"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{self.path} is damaged ({e}); delete it to render every character again") from None
        self._fd: int | None = None
        self._synced = self._folded = time.monotonic()
        self._fold_cost = 0.0
        self._unfolded = False  # results recorded since _batch.json was last written
        if self.journal.exists():  # left by a run that was killed
            self.characters.update(self._replay())
            self._fold()
            self.journal.unlink()

    def __enter__(self) -> Manifest:
        self._fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return self

    def __exit__(self, *exc) -> None:
        """Fold the journal into ``_batch.json`` and remove it (also after an error or a Ctrl-C); a run that recorded
        nothing (refused before it began) writes nothing."""
        if self._unfolded:
            self._fold()
        os.close(self._fd)
        self._fd = None
        self.journal.unlink(missing_ok=True)

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
        """Enter a worker's answer (its files already published): one line appended to the journal."""
        entry = {key: result[key] for key in ("source", "status", "findings", "error", "worker")}
        entry.update(seconds=round(result["seconds"], 3), sprites=len(result["files"]),
                     folder=str(self.out_dir / result["name"]) if result["status"] == DONE else None,
                     finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self.characters[result["name"]] = entry
        self._unfolded = True
        line = json.dumps({"name": result["name"], **entry}) + "\n"
        os.write(self._fd, line.encode("utf-8"))  # one write with O_APPEND: a line is cut short only by a crash
        now = time.monotonic()
        if now - self._synced >= SYNC_SECONDS:
            os.fsync(self._fd)
            self._synced = now
        if now - self._folded >= max(FOLD_SECONDS, FOLD_SHARE * self._fold_cost):
            self._fold()
        return entry

    def _fold(self) -> None:
        """Rewrite ``_batch.json`` with every result so far, then empty the journal (a crash in between leaves lines
        that the next run enters again, to the same effect)."""
        start = time.monotonic()
        write_json(self.path, {"characters": self.characters})
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        self._synced = self._folded = time.monotonic()
        self._fold_cost = self._folded - start
        self._unfolded = False

    def _replay(self) -> dict[str, dict]:
        """The journal's entries, in order; an unreadable last line (a write cut short) is left out."""
        lines = self.journal.read_bytes().split(b"\n")
        entries = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                entries[entry.pop("name")] = entry
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                if not any(rest.strip() for rest in lines[number:]):
                    break  # the last line, cut short
                raise ValueError(f"{self.journal} is damaged at line {number} ({e}); delete it to render the "
                                 "characters it recorded again") from None
        return entries


class BatchLock:
    """An exclusive ``flock`` on ``out_dir/.batch.lock`` for the life of a run, so that a second run into the same
    folder stops with a message instead of removing the first's half-written folders. The system releases it when the
    process ends, however it ends: a dead run's lock is free, with no guess about whether its holder lives."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOCK
        self.mine = f"{socket.gethostname()}:{os.getpid()}"
        self._fd: int | None = None

    def __enter__(self) -> BatchLock:
        for _ in range(3):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
                os.close(fd)
                raise RuntimeError(f"another batch run ({holder or 'starting'}) is writing into {self.path.parent}: "
                                   "wait for it to finish, or write elsewhere") from None
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)
                os.write(fd, self.mine.encode("utf-8"))
                self._fd = fd
                return self
            os.close(fd)  # a run that just finished removed that file: lock the one at the path now
        raise RuntimeError(f"could not lock {self.path.parent} (other runs keep starting there); try again")

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)  # while still locked: a rival holding the old file sees it gone
        os.close(self._fd)
        self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        there = path.stat()
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def remove_partials(out_dir: Path) -> None:
    """Folders a killed run was writing into, and a rewrite of ``_batch.json`` it was killed in."""
    for path in out_dir.glob(f".*{PARTIAL}*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in out_dir.glob(f".{MANIFEST}.*.tmp"):
        path.unlink(missing_ok=True)


class ForeignFolder(FileExistsError):
    """A character's folder exists and the batch did not make it (or someone added files to it): left alone."""


def foreign(target: Path) -> str | None:
    """Why ``target`` is not a folder this batch may replace (a message naming the folder and the fix), or None: it
    does not exist, or the batch made it (its ``MARKER`` lists every file in it)."""
    if not os.path.lexists(target):
        return None
    why = "it is a file or a link, not a folder"
    if target.is_dir() and not target.is_symlink():
        try:
            ours = set(json.loads((target / MARKER).read_text(encoding="utf-8"))["files"]) | {MARKER}
        except (OSError, ValueError, KeyError, TypeError):
            why = "the batch did not make it"
        else:
            extra = sorted(set(os.listdir(target)) - ours)
            if not extra:
                return None
            shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
            why = f"it holds files the batch did not write ({shown})"
    return (f"{target} exists and {why}, so the batch leaves it alone: move it away, or replace it with "
            "overwrite=True (--overwrite)")


def publish(out_dir: Path, name: str, files: dict[str, bytes], emotions: dict, *, overwrite: bool = False) -> Path:
    """Write ``files``, ``_emotions.json`` and the ``MARKER`` into a folder beside ``out_dir/name``, then move it into
    place. A folder already there is replaced (swapped with the new one in one step, then removed) only if the batch
    made it, or with ``overwrite``; otherwise :class:`ForeignFolder` is raised and nothing is touched."""
    target = out_dir / name
    partial = Path(tempfile.mkdtemp(prefix=f".{name}{PARTIAL}", dir=out_dir))
    try:
        for filename, data in files.items():
            write_bytes(partial / filename, data)
        write_json(partial / "_emotions.json", emotions)
        write_json(partial / MARKER, {"made_by": "talkinghead-nb sprites-batch",
                                      "files": sorted([*files, "_emotions.json"])})
        os.chmod(partial, 0o755)
        try:
            _rename(partial, target, _RENAME_NOREPLACE)
        except FileExistsError:
            reason = foreign(target)
            if reason and not overwrite:
                raise ForeignFolder(reason) from None
            _rename(partial, target, _RENAME_EXCHANGE)  # the old folder (or file) is at ``partial`` now
    finally:
        _remove(partial)
    return target


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2  # renameat2's flags (Linux)
_AT_FDCWD = -100
_renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)


def _rename(src: Path, dst: Path, flag: int) -> None:
    """Move ``src`` to ``dst`` without replacing anything (``_RENAME_NOREPLACE``: FileExistsError if ``dst`` exists),
    or swap the two (``_RENAME_EXCHANGE``), each in one step with Linux's ``renameat2``. Where the system or the file
    system lacks it: the same effect in steps (``dst`` is missing for a moment, and an existing empty folder is
    replaced)."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flag) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code), os.fspath(dst))
    if flag == _RENAME_NOREPLACE:
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", os.fspath(dst))
        os.rename(src, dst)
        return
    aside = Path(tempfile.mkdtemp(prefix=f"{src.name}-old", dir=src.parent))
    os.rename(dst, aside / "old")
    os.rename(src, dst)
    os.rename(aside / "old", src)
    aside.rmdir()
