"""A stand-in renderer for the protocol, pacing and abuse tests of the live server: it renders in about a
millisecond, and its frame still depends on the character and on every pose value, so a test can see that an
emotion or a character changed the picture. The real engine is exercised end to end in test_live_engine.py."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from talkinghead_nb import pose as P
from talkinghead_nb.character import Character
from talkinghead_nb.imaging import rgba_to_tensor


class FakePoser:
    variant = "fake"
    device = torch.device("cpu")

    def __init__(self, seconds_per_frame: float = 0.0):
        self.seconds_per_frame = seconds_per_frame
        self.frames = 0
        self._lock = threading.Lock()

    def render_array(self, character: Character, poses) -> np.ndarray:
        """(N, 512, 512, 4): the character, with the pose written as grey bars over its top rows (one 11-pixel
        column band per parameter), so that any change of pose changes the picture."""
        vectors = np.atleast_2d(np.asarray(poses, np.float32))
        out = np.repeat(character.rgba[None], len(vectors), axis=0)
        span = (P.HIGH - P.LOW)
        levels = ((vectors - P.LOW) / span * 255).clip(0, 255).astype(np.uint8)  # (N, 45)
        out[:, :64, :45 * 11, :3] = np.repeat(levels, 11, axis=1)[:, None, :, None]
        out[:, :64, :45 * 11, 3] = 255
        if self.seconds_per_frame:
            time.sleep(self.seconds_per_frame)
        with self._lock:
            self.frames += len(vectors)
        return out

    def render_tensor(self, character: Character, poses) -> torch.Tensor:
        """The same pictures as the engine's output: (N, 4, H, W) linear RGBA in [-1, 1]."""
        return torch.cat([rgba_to_tensor(rgba) for rgba in self.render_array(character, poses)])

    def render_batch(self, characters, poses) -> torch.Tensor:
        """Frame i: ``characters[i]`` in ``poses[i]`` (the batched scheduler's entry point)."""
        vectors = np.atleast_2d(np.asarray(poses, np.float32))
        return torch.cat([self.render_tensor(c, v) for c, v in zip(characters, vectors, strict=True)])

    def __repr__(self) -> str:
        return "FakePoser()"
