"""A sprite batch on Ray Data: the characters as a dataset (one row each, bytes included, read by the driver a chunk
at a time into the object store), ``map_batches`` on an actor pool with one engine per actor, the answers streamed
back to the driver as they finish (Ray Data's backpressure bounds how many wait), and a watchdog that ends a run that
makes no progress with a message instead of a hang."""

from __future__ import annotations

import contextlib
import itertools
import logging
import pickle
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace

from .ray_setup import EnginePlan, check_capacity, connect, plan_engines, require_ray
from .worker import BatchSettings, Job, SpriteWorker

POLL_SECONDS = 1.0
# Ray's warnings about what is as it should be: a local Ray's token authentication (on by default: the safe way),
# and the progress bars this module turns off (ours counts characters). Other warnings and errors still show.
EXPECTED_WARNINGS = ("ray._private.authentication.authentication_token_setup", "ray.data._internal.progress")
CHUNK_ROWS = 64  # characters read into one dataset at a time (≈ 0.4 MB each)


class BatchStalled(RuntimeError):
    """No character finished for ``stall_seconds``: the run stopped waiting (the message says what Ray has)."""


class SpriteActor:
    """One engine in a Ray actor; a batch of rows in, one pickled answer per row out."""

    def __init__(self, settings: BatchSettings):
        self.worker = SpriteWorker(settings)

    def __call__(self, batch: dict) -> dict:
        jobs = [Job(str(n), str(s), bytes(d)) for n, s, d in zip(batch["name"], batch["source"], batch["data"],
                                                                  strict=True)]
        return {"answer": [pickle.dumps(self.worker.render(job)) for job in jobs]}


def run_on_ray(jobs: Iterable[Job | dict], count: int, settings: BatchSettings, address: str, workers: int | None,
               stall_seconds: float) -> Iterator[dict]:
    """The answers for ``jobs`` (``count`` of them; a dict among them is an answer already known), as Ray Data
    delivers them; see :func:`connect` for ``address``."""
    ray = require_ray()
    for name in EXPECTED_WARNINGS:
        logging.getLogger(name).setLevel(logging.ERROR)
    connection = connect(address, workers or 1)
    try:
        plan = plan_engines(workers, settings.engine.device)
        check_capacity(plan)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # ours counts characters
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        known: list[dict] = []
        dataset = _dataset(ray, jobs, known)
        yield from known
        if dataset is None:
            return
        settings = replace(settings, engine=replace(settings.engine, threads=plan.threads))
        dataset = dataset.map_batches(
            SpriteActor, fn_constructor_kwargs={"settings": settings}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(plan.engines, count)),
            **settings.engine.actor_options(plan.cpus, plan.gpus))
        for row in watched(dataset.iter_rows(), stall_seconds, plan):
            yield pickle.loads(row["answer"])
    finally:
        connection.close()


def _dataset(ray, jobs: Iterable[Job | dict], known: list[dict]):
    """The jobs as a dataset of one row (one block) each, built ``CHUNK_ROWS`` at a time: each chunk goes into Ray's
    object store (which spills to disk when full) as it is read, so this process never holds more than a chunk of
    characters; answers already known are appended to ``known``. None when no job is left."""
    parts = []
    for chunk in _chunks(_jobs_only(jobs, known), CHUNK_ROWS):
        rows = [{"name": j.name, "source": j.source, "data": j.data} for j in chunk]
        parts.append(ray.data.from_items(rows, override_num_blocks=len(rows)))
    if not parts:
        return None
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def _jobs_only(jobs: Iterable[Job | dict], known: list[dict]) -> Iterator[Job]:
    for job in jobs:
        if isinstance(job, Job):
            yield job
        else:
            known.append(job)


def _chunks(items: Iterable[Job], size: int) -> Iterator[list[Job]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def watched(rows: Iterable[dict], stall_seconds: float, plan: EnginePlan) -> Iterator[dict]:
    """``rows``, read in a thread of their own, so that a wait longer than ``stall_seconds`` for the next one raises
    :class:`BatchStalled` here instead of blocking forever. When the driver stops reading (a stall, Ctrl-C, an error
    while writing), the thread stops too and closes its iterator, which releases Ray Data's execution."""
    inbox: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    end = object()

    def hand(item: object) -> bool:
        """Put ``item`` in the inbox unless the driver has left; whether it was handed."""
        while not stop.is_set():
            try:
                inbox.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        iterator = None
        try:
            iterator = iter(rows)
            for row in iterator:
                if not hand(row):
                    return
            hand(end)
        except BaseException as e:  # handed to the driver, which raises it
            hand(e)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    threading.Thread(target=read, name="talkinghead-batch-reader", daemon=True).start()
    try:
        yield from _received(inbox, end, stall_seconds, plan)
    finally:
        stop.set()


def _received(inbox: queue.Queue, end: object, stall_seconds: float, plan: EnginePlan) -> Iterator[dict]:
    last = time.monotonic()
    while True:
        try:
            item = inbox.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if time.monotonic() - last > stall_seconds:
                raise BatchStalled(_stall_message(stall_seconds, plan)) from None
            continue
        if item is end:
            return
        if isinstance(item, BaseException):
            raise item
        last = time.monotonic()
        yield item


def _stall_message(stall_seconds: float, plan: EnginePlan) -> str:
    ray = require_ray()
    free = ray.available_resources()
    return (f"no character finished in {stall_seconds:g} s, so the batch stopped waiting ({plan.describe()} were "
            f"asked for; Ray has {free.get('CPU', 0):g} CPU(s) and {free.get('GPU', 0):g} GPU(s) free now). Other "
            "work may hold the cluster, or one character takes longer than that: run again (finished characters "
            "are kept) with fewer workers, or a larger stall_seconds (--stall-timeout)")
