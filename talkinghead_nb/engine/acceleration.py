"""Speed-ups around the networks that leave the arithmetic alone: allocator tuning on the CPU, ``torch.compile``
with a safe fallback, and CUDA-graph replay of a whole frame.

Measured on the 2-core development box (docs/engine.md): freeing and re-mapping the large activations costs as much
system time as the convolutions take user time; keeping freed memory in the heap halves the time of a frame.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

_M_TOP_PAD = -2  # glibc mallopt parameters
_M_ARENA_MAX = -8
HEAP_PAD_BYTES = 1 << 30
_heap_tuned = False
_heap_lock = threading.Lock()


def retain_freed_memory(pad_bytes: int = HEAP_PAD_BYTES) -> bool:
    """Ask glibc's allocator to grow its heap in large steps and keep up to ``pad_bytes`` of freed memory, in one
    heap for all threads.

    A THA3 frame allocates and frees activations of tens of MB; by default glibc serves those with fresh ``mmap``
    calls whose pages the kernel must zero again on every frame. Threads other than the main one get heaps of at most
    64 MiB, too small for these, so a single heap (arena) is used: renders from a background thread (the live server)
    then run as fast as from the main thread.

    What it gives and costs, measured with ``bench/allocator.py`` (separable_float, 2-core CPU, frames rendered from
    a background thread, each case a fresh process; ``bench/results/allocator-*.txt``): 1.7× the frames/s (0.75–0.81
    → 1.25–1.45); resident memory after rendering 0.9–1.3 GiB instead of 0.73 GiB, so 0.2–0.6 GiB more stays with the
    process for its lifetime (at most ``pad_bytes``), while the peak is no higher; and all threads share one
    allocator lock.

    Process-wide and irreversible, so it is the application's choice (the command line makes it, ``--no-tune-allocator``
    declines; a ``Poser`` never does). Idempotent; a no-op (returning False) where the C library is not glibc.
    """
    global _heap_tuned
    with _heap_lock:
        if _heap_tuned:
            return True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"))
            libc.gnu_get_libc_version  # noqa: B018 — present in glibc only
        except (OSError, AttributeError, TypeError):
            return False
        _heap_tuned = bool(libc.mallopt(_M_TOP_PAD, ctypes.c_int(pad_bytes))) and bool(libc.mallopt(_M_ARENA_MAX, 1))
        return _heap_tuned


class CompiledOrEager(nn.Module):
    """``torch.compile`` of a network that falls back to the eager network, once and for good, if compiling or
    running the compiled graph fails (no compiler, an unsupported op on this platform)."""

    def __init__(self, network: nn.Module, **compile_options):
        super().__init__()
        self.network = network
        self._compiled: Callable | None = torch.compile(network, **compile_options)
        self.failure: str | None = None

    def forward(self, *args: Tensor) -> dict[str, Tensor]:
        if self._compiled is not None:
            try:
                return self._compiled(*args)
            except Exception as e:  # noqa: BLE001 — any compiler failure means: run eagerly
                self.failure = f"{type(e).__name__}: {' '.join(str(e).split())[:500]}"
                log.warning("torch.compile failed for %s, running it eagerly: %s",
                            type(self.network).__name__, self.failure)
                self._compiled = None
        return self.network(*args)


class CudaGraphFrame:
    """A frame captured as a CUDA graph: ``__call__(*inputs)`` copies the inputs into the static ones, replays every
    kernel of the frame with a single launch, and returns a copy of the static output.

    At batch 1 a frame is hundreds of small kernels, so on a fast GPU launching them costs more than running them.
    ``frame`` takes tensors shaped like ``example_inputs`` (a pose; or a batch's images, layers and poses).
    """

    def __init__(self, frame: Callable[..., Tensor], *example_inputs: Tensor, warm_up: int = 3):
        self.inputs = tuple(x.clone() for x in example_inputs)
        device = self.inputs[0].device
        side_stream = torch.cuda.Stream(device=device)
        side_stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side_stream):
            for _ in range(warm_up):  # lets cuDNN pick its algorithms outside the capture
                frame(*self.inputs)
        torch.cuda.current_stream(device).wait_stream(side_stream)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: other threads may use the GPU meanwhile (live sessions converting their frames)
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.output = frame(*self.inputs)

    def __call__(self, *inputs: Tensor) -> Tensor:
        for static, given in zip(self.inputs, inputs, strict=True):
            static.copy_(given)
        self.graph.replay()
        return self.output.clone()
