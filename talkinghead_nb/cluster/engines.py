"""How a worker or replica builds its engine: the same options as the command line's, plus a stand-in for tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EngineSpec:
    """``Poser(model, device, backend=…, compile=…)`` with weights from ``models`` (``offline``: no downloads),
    the allocator tuned on a CPU, and ``threads`` CPU threads (None: torch's default). ``make_poser`` (a picklable
    callable) builds a stand-in instead, for tests."""

    model: str = "auto"
    device: str = "auto"
    backend: str = "auto"
    models: str | None = None
    offline: bool = False
    compile: bool = False
    tune_allocator: bool = True
    threads: int | None = None
    make_poser: Callable[[], Any] | None = None

    def build(self):
        import torch
        if self.threads:
            torch.set_num_threads(self.threads)
        if self.make_poser is not None:
            return self.make_poser()
        from ..engine import Poser, resolve_device
        from ..engine.acceleration import retain_freed_memory
        from ..weights import WeightsStore
        if self.tune_allocator and resolve_device(self.device).type == "cpu":
            retain_freed_memory()
        store = WeightsStore(self.models, allow_download=not self.offline)
        return Poser(self.model, self.device, store=store, backend=self.backend, compile=self.compile)

    def actor_options(self, cpus: float, gpus: float) -> dict:
        """Ray options for an actor that holds this engine. On a CPU, with ``tune_allocator``, the allocator is
        tuned through the environment, which glibc reads when the process starts: in a Ray actor, threads that Ray
        started before the engine already have heaps of their own, and tuning later (``retain_freed_memory``) does
        not reach them (measured: 8.5–10 s a character instead of 4–5.5 s)."""
        options: dict = {"num_cpus": cpus, "num_gpus": gpus}
        if self.tune_allocator and not gpus:
            from ..engine.acceleration import HEAP_PAD_BYTES
            tunables = f"glibc.malloc.arena_max=1:glibc.malloc.top_pad={HEAP_PAD_BYTES}"
            options["runtime_env"] = {"env_vars": {"GLIBC_TUNABLES": tunables}}
        return options


def threads_per_engine(engines: int) -> int:
    """This machine's cores shared out between ``engines`` (at least one thread each)."""
    return max(1, (os.cpu_count() or 1) // engines)
