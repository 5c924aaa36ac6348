"""Sprites for many characters: each one checked, rendered on a worker, its folder written atomically and entered
in ``_batch.json``; a broken character is recorded and the batch goes on; a second run resumes.

    export_many("characters/", "sprites/")                       # worker processes on this machine
    export_many("characters/", "sprites/", ray="local", workers=2)  # Ray Data, a local Ray
    export_many("list.txt", "sprites/", ray="ray://head:10001")  # Ray Data on a cluster
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..emotions import EMOTIONS, EmotionLibrary
from ..sprites import emotions_document
from .engines import EngineSpec, threads_per_engine
from .inputs import find_characters
from .manifest import Manifest, publish, remove_partials
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
                model: str = "auto", device: str = "auto", backend: str = "torch", models: str | None = None,
                offline: bool = False, fit: bool = False, emotions_dir: str | os.PathLike | None = None,
                retry_failed: bool = False, tune_allocator: bool = True, progress: bool = True,
                stall_seconds: float = DEFAULT_STALL_SECONDS,
                make_poser: Callable[[], Any] | None = None) -> BatchResult:
    """Export the sprites (``names``, default all 28) of every character in ``inputs`` (a folder, a ``.txt`` list,
    a glob pattern, or paths) into ``out_dir/<name>/``, and record each in ``out_dir/_batch.json``.

    Without ``ray``: ``workers`` processes on this machine (default 1, in this process), each with its own engine.
    With ``ray``: ``"local"`` (a Ray started here, sized so that it cannot starve), ``"auto"`` (the running cluster,
    else a local one) or a cluster's address; Ray Data renders on an actor pool of ``workers`` engines (one GPU each
    where the cluster has GPUs). Characters done in an earlier run are skipped; failed ones are retried only with
    ``retry_failed``. A folder ``out_dir/<name>`` is replaced whole when its character is rendered. Worker processes
    are spawned: a script that calls this needs the ``if __name__ == "__main__":`` guard."""
    start = time.perf_counter()
    characters = find_characters(inputs)
    templates = EmotionLibrary(emotions_dir).load()
    for name in names:
        templates.vector(name)  # an unknown emotion fails before anything runs
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_partials(out)
    manifest = Manifest(out)
    result = BatchResult(out, manifest.path)
    todo = {}
    for name, path in characters.items():
        status = manifest.status(name, names)
        if status == DONE:
            result.skipped.append(name)
        elif status == FAILED and not retry_failed:
            result.kept_failed.append(name)
        else:
            todo[name] = path
    engine = EngineSpec(model=model, device=device, backend=backend, models=models, offline=offline,
                        tune_allocator=tune_allocator, make_poser=make_poser)
    settings = BatchSettings(templates=templates, names=tuple(names), engine=engine, fit=fit)
    emotions = emotions_document(templates, names)
    from tqdm.auto import tqdm
    answers = _answers(todo, settings, ray, workers, stall_seconds)
    with closing(answers), tqdm(total=len(todo), desc="characters", unit="character", disable=not progress) as bar:
        for answer in answers:
            if answer["status"] == DONE:
                publish(out, answer["name"], answer["files"], emotions)
            manifest.record(answer)
            (result.rendered if answer["status"] == DONE else result.failed).append(answer["name"])
            bar.set_postfix(failed=len(result.failed), refresh=False)
            bar.update()
    result.seconds = time.perf_counter() - start
    return result


def _answers(todo: dict[str, Path], settings: BatchSettings, ray: str | None, workers: int | None,
             stall_seconds: float) -> Iterator[dict]:
    """The answer for each character, as it comes: first those known without a worker (unreadable files)."""
    jobs = []
    for name, path in todo.items():
        try:
            if path.stat().st_size > MAX_INPUT_BYTES:
                raise ValueError(f"{path} is {path.stat().st_size / 2**20:.0f} MiB, far larger than a character "
                                 "image: use a 512×512 PNG")
            jobs.append(Job(name, str(path), path.read_bytes()))
        except (OSError, ValueError) as e:
            yield outcome(name, str(path), FAILED, error=str(e),
                          findings=[{"check": "file", "level": "error", "message": str(e), "fix": ""}])
    if not jobs:
        return
    if ray is not None:
        from .ray_batch import run_on_ray
        yield from run_on_ray(jobs, settings, ray, workers, stall_seconds)
    else:
        yield from run_in_pool(jobs, settings, workers or 1)


def run_in_pool(jobs: list[Job], settings: BatchSettings, workers: int) -> Iterator[dict]:
    """Answers from ``workers`` processes (spawned: a forked torch can hang), each with one engine and its share of
    the cores; one worker renders in this process."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        worker = SpriteWorker(settings)
        yield from (worker.render(job) for job in jobs)
        return
    settings = replace(settings, engine=replace(settings.engine, threads=threads_per_engine(workers)))
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=start_process_worker, initargs=(settings,))
    try:
        futures = [pool.submit(render_in_process, job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    except BrokenProcessPool:
        raise RuntimeError("a worker process died (out of memory, or its engine could not be built; "
                           "TALKINGHEAD_NB_DEBUG=1 shows more); the characters finished so far are kept: run again "
                           "to resume, with fewer workers if memory is short") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
