"""Stand-ins for the cluster tests, importable by worker processes and Ray actors (which unpickle them by name)."""

from __future__ import annotations

import os
import signal

import torch

from .fake_engine import FakePoser


class CpuFakePoser(FakePoser):
    """The fake renderer as a CPU engine (sprites ask for the device to choose their batch size); with ``log``, it
    appends a line to that file for every batch of poses it renders (a render counter across processes)."""

    device = torch.device("cpu")

    def __init__(self, seconds_per_frame: float = 0.0, log: str | None = None):
        super().__init__(seconds_per_frame)
        self.log = log

    def render_array(self, character, poses):
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()}\n")
        return super().render_array(character, poses)


def ctrl_c_allowed() -> None:
    """For ``preexec_fn``: a shell without job control starts background commands with Ctrl-C ignored, and a child
    inherits that; the tests that press Ctrl-C need it to arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
