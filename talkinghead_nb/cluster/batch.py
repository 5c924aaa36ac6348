"""Sprites for many characters: each one checked, rendered on a worker, its folder written atomically and entered
in ``_batch.json``; a broken character is recorded and the batch goes on; a second run resumes.

    export_many("characters/", "sprites/")                       # worker processes on this machine
    export_many("characters/", "sprites/", ray="local", workers=2)  # Ray Data, a local Ray
    export_many("list.txt", "sprites/", ray="ray://head:10001")  # Ray Data on a cluster
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..emotions import EMOTIONS, EmotionLibrary
from ..prep.checks import ERROR, python_hint
from ..prep.fixes import REPAIRS
from ..sprites import emotions_document
from .engines import EngineSpec, threads_per_engine
from .inputs import find_characters
from .manifest import BatchLock, ForeignFolder, Manifest, foreign, publish, remove_partials
from .worker import (
    DONE,
    FAILED,
    BatchSettings,
    Job,
    SpriteWorker,
    outcome,
    render_in_process,
    start_process_worker,
)

MAX_INPUT_BYTES = 64 * 2**20  # far above any character image; a larger file is refused unread
DEFAULT_STALL_SECONDS = 900.0  # no character finished for this long: a Ray run says so and stops
IN_FLIGHT_PER_WORKER = 2  # jobs handed out per worker process: one rendering, one waiting, no more in memory
FOLDER_FIX = ("move the folder away (or rename the character's file), or add overwrite=True (--overwrite) to replace "
              "it; then run again with retry_failed=True (--retry-failed)")


@dataclass
class BatchResult:
    """What a run did; the whole story (every run's characters) is in ``manifest``."""

    out_dir: Path
    manifest: Path
    rendered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)       # done by an earlier run
    kept_failed: list[str] = field(default_factory=list)   # failed in an earlier run, not retried
    seconds: float = 0.0

    @property
    def per_minute(self) -> float:
        """Characters rendered per minute, wall clock (broken ones count: they were handled)."""
        return 60 * (len(self.rendered) + len(self.failed)) / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        before = f", {len(self.kept_failed)} failed before (not retried)" if self.kept_failed else ""
        text = (f"{self.out_dir}: {len(self.rendered)} character(s) rendered, {len(self.failed)} failed, "
                f"{len(self.skipped)} done before{before}, in {self.seconds:.1f} s; details in {self.manifest}")
        if self.failed or self.kept_failed:
            text += "; fix the failed ones (their findings say how) and run again with retry_failed=True"
        return text


def export_many(inputs: str | os.PathLike | Iterable[str | os.PathLike], out_dir: str | os.PathLike, *,
                names: Sequence[str] = EMOTIONS, ray: str | None = None, workers: int | None = None,
                model: str = "auto", device: str = "auto", backend: str = "auto", models: str | None = None,
                offline: bool = False, fit: bool = False, emotions_dir: str | os.PathLike | None = None,
                retry_failed: bool = False, overwrite: bool = False, tune_allocator: bool | None = None,
                progress: bool = True, stall_seconds: float = DEFAULT_STALL_SECONDS,
                make_poser: Callable[[], Any] | None = None) -> BatchResult:
    """Export the sprites (``names``, default all 28) of every character in ``inputs`` (a folder, a ``.txt`` list,
    a glob pattern, or paths) into ``out_dir/<name>/``, and record each in ``out_dir/_batch.json``.

    Without ``ray``: ``workers`` processes on this machine (default 1, in this process), each with its own engine.
    With ``ray``: ``"local"`` (a Ray started here, sized so that it cannot starve), ``"auto"`` (the running cluster,
    else a local one) or a cluster's address; Ray Data renders on an actor pool of ``workers`` engines (one GPU each
    where the cluster has GPUs). Characters done in an earlier run are skipped; failed ones are retried only with
    ``retry_failed``. A folder ``out_dir/<name>`` that the batch made is replaced whole (in one step) when its
    character is rendered again; anything else there (a folder the batch did not make, or one with files added) is
    left alone and its character fails, unless ``overwrite``. Worker processes are spawned: a script that calls this
    needs the ``if __name__ == "__main__":`` guard.

    ``tune_allocator`` (on a CPU, see ``engine.acceleration.retain_freed_memory``): by default (None) the worker
    processes and Ray actors, which are the batch's own, are tuned, and the calling process is left as it is (the
    tuning is process-wide: with ``workers=1`` the engine runs here); True tunes this process too (the command line
    does), False none. Two runs into the same ``out_dir`` at once are refused (``out_dir/.batch.lock``)."""
    characters = find_characters(inputs)
    templates = EmotionLibrary(emotions_dir).load()
    for name in names:
        templates.vector(name)  # an unknown emotion fails before anything runs
    engine = EngineSpec(model=model, device=device, backend=backend, models=models, offline=offline,
                        tune_allocator=tune_allocator is not False, make_poser=make_poser)
    settings = BatchSettings(templates=templates, names=tuple(names), engine=engine, fit=fit)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with BatchLock(out):
        return _run(characters, out, settings, ray=ray, workers=workers, retry_failed=retry_failed,
                    overwrite=overwrite, progress=progress, stall_seconds=stall_seconds,
                    tune_here=bool(tune_allocator))


def _run(characters: dict[str, Path], out: Path, settings: BatchSettings, *, ray: str | None, workers: int | None,
         retry_failed: bool, overwrite: bool, progress: bool, stall_seconds: float, tune_here: bool) -> BatchResult:
    start = time.perf_counter()
    remove_partials(out)  # safe: the lock says that no other run is writing here
    manifest = Manifest(out)
    result = BatchResult(out, manifest.path)
    todo = {}
    for name, path in characters.items():
        status = manifest.status(name, settings.names)
        if status == DONE:
            result.skipped.append(name)
        elif status == FAILED and not retry_failed:
            result.kept_failed.append(name)
        else:
            todo[name] = path
    emotions = emotions_document(settings.templates, settings.names)
    from tqdm.auto import tqdm
    answers = _answers(todo, settings, ray, workers, stall_seconds, tune_here, out=None if overwrite else out)
    with closing(answers), manifest, tqdm(total=len(todo), desc="characters", unit="character",
                                          disable=not progress) as bar:
        for answer in answers:
            if answer["status"] == DONE:
                answer = _published(out, answer, emotions, overwrite)
            answer = _command_line_fixes(answer)
            manifest.record(answer)
            (result.rendered if answer["status"] == DONE else result.failed).append(answer["name"])
            bar.set_postfix(failed=len(result.failed), refresh=False)
            bar.update()
    result.seconds = time.perf_counter() - start
    return result


def _command_line_fixes(answer: dict) -> dict:
    """``answer`` with each repair written as the command that does it (the checks write the Python call,
    ``prep.remove_specks(image)``, which it keeps in brackets), and a fix for every error that had none."""
    source = shlex.quote(answer["source"])
    repaired = shlex.quote(f"{Path(answer['source']).stem}-repaired.png")
    findings = []
    for finding in answer["findings"]:
        fix = finding["fix"]
        for repair in REPAIRS:
            call = python_hint(repair)
            command = f"talkinghead-nb repair {source} {repaired} --{repair} && mv {repaired} {source}"
            fix = fix.replace(call, f"{command} (in Python: {call})")
        if not fix and finding["level"] == ERROR:
            fix = f"replace the file with a 512×512 PNG with transparency; talkinghead-nb check {source} tells more"
        findings.append({**finding, "fix": fix})
    return {**answer, "findings": findings}


def _published(out: Path, answer: dict, emotions: dict, overwrite: bool) -> dict:
    """``answer`` once its folder is in place; or, when something the batch may not replace took the place while
    the character was rendered, the character's failed answer."""
    try:
        publish(out, answer["name"], answer["files"], emotions, overwrite=overwrite)
    except ForeignFolder as e:
        return {**answer, "status": FAILED, "files": {}, "error": str(e),
                "findings": [*answer["findings"], _finding("folder", str(e), FOLDER_FIX)]}
    return answer


def _answers(todo: dict[str, Path], settings: BatchSettings, ray: str | None, workers: int | None,
             stall_seconds: float, tune_here: bool, out: Path | None) -> Iterator[dict]:
    """The answer for each character, as it comes: first those known without a worker (files that cannot be read,
    and, with ``out``, characters whose folder there is not the batch's). The others' bytes are read only when their
    job is handed out, so a large catalogue is never in memory at once."""
    readable = {}
    for name, path in todo.items():
        refused = _refused(name, path, out)
        if refused is None:
            readable[name] = path
        else:
            yield refused
    if not readable:
        return
    jobs = (_job(name, path) for name, path in readable.items())
    if ray is not None:
        from .ray_batch import run_on_ray
        yield from run_on_ray(jobs, len(readable), settings, ray, workers, stall_seconds)
    else:
        yield from run_in_pool(jobs, len(readable), settings, workers or 1, tune_here=tune_here)


def _refused(name: str, path: Path, out: Path | None) -> dict | None:
    """The failed answer for a character refused before any worker sees it, or None. With ``out``, one whose
    folder there the batch may not replace is refused too."""
    if name.startswith(("_", ".")):  # its folder would clash with _batch.json or the .partial- folders
        return _failed(name, path, "name", f"{path}: a character's name (its file's stem, {name!r}) must not start "
                       "with '_' or '.', which the batch's own files use", "rename the file")
    if out is not None and (reason := foreign(out / name)):
        return _failed(name, path, "folder", reason, FOLDER_FIX)
    try:
        _check_size(path)
    except (OSError, ValueError) as e:
        return _failed(name, path, "file", str(e))
    return None


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_INPUT_BYTES:
        raise ValueError(f"{path} is {size / 2**20:.0f} MiB, far larger than a character image: use a 512×512 PNG")


def _job(name: str, path: Path) -> Job | dict:
    """The job for one character, its file read now; or its failed answer if the file cannot be read any more."""
    try:
        _check_size(path)
        return Job(name, str(path), path.read_bytes())
    except (OSError, ValueError) as e:
        return _failed(name, path, "file", str(e))


def _finding(check: str, message: str, fix: str = "") -> dict:
    return {"check": check, "level": "error", "message": message, "fix": fix}


def _failed(name: str, path: Path, check: str, message: str, fix: str = "") -> dict:
    return outcome(name, str(path), FAILED, error=message, findings=[_finding(check, message, fix)])


def run_in_pool(jobs: Iterable[Job | dict], count: int, settings: BatchSettings, workers: int, *,
                tune_here: bool = False) -> Iterator[dict]:
    """Answers for ``jobs`` (``count`` of them; a dict among them is an answer already known) from ``workers``
    processes (spawned: a forked torch can hang), each with one engine and its share of the cores; one worker
    renders in this process, with the allocator tuned only if ``tune_here`` (it is process-wide: the caller's
    choice). At most ``IN_FLIGHT_PER_WORKER`` jobs per worker are out at once: each holds a character's bytes, and
    each answer its sprites (≈ 3.7 MB)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        yield from _in_this_process(jobs, settings, tune_here)
        return
    settings = replace(settings, engine=replace(settings.engine, threads=threads_per_engine(workers)))
    pool = ProcessPoolExecutor(min(workers, count), mp_context=multiprocessing.get_context("spawn"),
                               initializer=start_process_worker, initargs=(settings,))
    try:
        yield from _windowed(pool, iter(jobs), IN_FLIGHT_PER_WORKER * workers)
    except BrokenProcessPool:
        raise RuntimeError("a worker process died (out of memory, or its engine could not be built; "
                           "TALKINGHEAD_NB_DEBUG=1 shows more); the characters finished so far are kept: run again "
                           "to resume, with fewer workers if memory is short") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _in_this_process(jobs: Iterable[Job | dict], settings: BatchSettings, tune_here: bool) -> Iterator[dict]:
    engine = replace(settings.engine, tune_allocator=settings.engine.tune_allocator and tune_here)
    worker = None
    for job in jobs:
        if isinstance(job, dict):
            yield job
            continue
        worker = worker or SpriteWorker(replace(settings, engine=engine))
        yield worker.render(job)


def _windowed(pool: Executor, jobs: Iterator[Job | dict], window: int) -> Iterator[dict]:
    """The answers of ``jobs`` on ``pool``, with at most ``window`` submitted and not yet answered; a future is
    dropped as soon as its answer is handed on."""
    pending: set[Future] = set()
    for job in jobs:
        if isinstance(job, dict):
            yield job
            continue
        pending.add(pool.submit(render_in_process, job))
        while len(pending) >= window:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from (future.result() for future in done)
