"""A sprite batch on Ray Data: the characters as a dataset (one row each, bytes included), ``map_batches`` on an
actor pool with one engine per actor, the answers streamed back to the driver as they finish, and a watchdog that
ends a run that makes no progress with a message instead of a hang."""

from __future__ import annotations

import logging
import pickle
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

from .ray_setup import EnginePlan, check_capacity, connect, plan_engines, require_ray
from .worker import BatchSettings, Job, SpriteWorker

POLL_SECONDS = 1.0


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


def run_on_ray(jobs: list[Job], settings: BatchSettings, address: str, workers: int | None,
               stall_seconds: float) -> Iterator[dict]:
    """The answers for ``jobs``, as Ray Data delivers them; see :func:`connect` for ``address``."""
    ray = require_ray()
    connection = connect(address, workers or 1)
    try:
        plan = plan_engines(workers, settings.engine.device)
        check_capacity(plan)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # ours counts characters
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        rows = [{"name": j.name, "source": j.source, "data": j.data} for j in jobs]
        settings = replace(settings, engine=replace(settings.engine, threads=plan.threads))
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            SpriteActor, fn_constructor_kwargs={"settings": settings}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(plan.engines, len(rows))),
            **settings.engine.actor_options(plan.cpus, plan.gpus))
        for row in watched(dataset.iter_rows(), stall_seconds, plan):
            yield pickle.loads(row["answer"])
    finally:
        connection.close()


def watched(rows: Iterator[dict], stall_seconds: float, plan: EnginePlan) -> Iterator[dict]:
    """``rows``, read in a thread of their own, so that a wait longer than ``stall_seconds`` for the next one raises
    :class:`BatchStalled` here instead of blocking forever."""
    inbox: queue.Queue = queue.Queue(maxsize=1)
    end = object()

    def read() -> None:
        try:
            for row in rows:
                inbox.put(row)
            inbox.put(end)
        except BaseException as e:  # handed to the driver, which raises it
            inbox.put(e)

    threading.Thread(target=read, name="talkinghead-batch-reader", daemon=True).start()
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
