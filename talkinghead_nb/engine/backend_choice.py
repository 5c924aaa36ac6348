"""``backend="auto"``: the fastest path this machine runs faithfully enough, and one line that says why.

- CUDA: ``separable_half`` in fp16 with CUDA graphs (the torch backend).
- A CPU with bf16 units (OpenVINO reports ``BF16``): ``openvino-bf16``.
- Other CPUs: ``openvino`` (float32).
- Where OpenVINO is not installed (or cannot convert the networks, which the poser finds out), or with
  ``compile=True`` (``torch.compile`` is a torch path): ``torch``, exact.

Every automatic choice stays at ≥ 45 dB PSNR against the exact path on extreme poses (tests/test_auto_backend.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

BACKENDS = ("torch", "openvino", "openvino-bf16")
ALIASES = {"exact": "torch"}
# What a caller may name (the command line's choices): the backends, "auto", and the aliases.
BACKEND_NAMES = ("auto", *BACKENDS, *ALIASES)


@dataclass(frozen=True)
class BackendChoice:
    """A resolved path: ``backend`` (one of ``BACKENDS``), the ``variant`` it runs best with, whether it replays
    CUDA graphs, and ``reason``, one line for people ("openvino-bf16: this CPU has bf16 units (AMX)")."""

    backend: str
    variant: str
    cuda_graphs: bool
    reason: str


def normalize_backend(backend: str) -> str:
    """``backend`` with aliases resolved (``exact`` → ``torch``); ``auto`` stays; an unknown name raises ValueError."""
    if backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}, auto (the fastest "
                         "faithful path here) or exact (= torch)")
    return ALIASES.get(backend, backend)


def choose_backend(device: torch.device, *, compile: bool = False) -> BackendChoice:
    """The path ``backend="auto"`` takes on ``device`` (resolved: ``cpu`` or ``cuda[:N]``)."""
    if device.type == "cuda":
        return BackendChoice("torch", "separable_half", True,
                             f"torch separable_half + CUDA graphs: fp16 on {torch.cuda.get_device_name(device)}")
    if compile:
        return BackendChoice("torch", "separable_float", False, "torch + torch.compile: compile=True asks for it")
    try:
        import openvino
        capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except ImportError:
        return BackendChoice("torch", "separable_float", False,
                             "torch: OpenVINO is not installed (pip install openvino for the faster CPU paths)")
    except RuntimeError as e:  # OpenVINO without a usable CPU plugin
        return BackendChoice("torch", "separable_float", False,
                             f"torch: OpenVINO cannot use this CPU ({' '.join(str(e).split())[:160]})")
    if "BF16" in capabilities:
        return BackendChoice("openvino-bf16", "separable_float", False,
                             f"openvino-bf16: this CPU has bf16 units ({bf16_units()})")
    return BackendChoice("openvino", "separable_float", False,
                         "openvino: float32 (this CPU has no bf16 units for openvino-bf16)")


def bf16_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """Which bf16 units the CPU flags name: ``AMX``, ``AVX-512 BF16``, or ``reported by OpenVINO`` elsewhere."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX-512 BF16"
    return "reported by OpenVINO"
