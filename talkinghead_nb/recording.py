"""Recordings of a character speaking: exact renders of the animation at a fixed frame rate (not the live,
render-bound rate), written as numbered PNG frames with the audio beside them, and as a video with sound when an
ffmpeg is at hand (the ``imageio-ffmpeg`` wheel ships one).

The animator runs on a clock of its own (frame ``i`` is at ``i / fps`` seconds), so a recording is the same on any
machine and frame ``i`` equals ``poser.render_array(character, pose_at(i / fps))``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_bytes
from .character import Character
from .emotions import EmotionTemplates
from .encoding import encode_png
from .engine import Poser
from .live.animator import Animator
from .live.settings import AnimatorSettings
from .speech import Speech

MAX_FPS = 60
TAIL_SECONDS = 0.3  # after the speech: the mouth returns to the emotion's shape


@dataclass
class Recording:
    folder: Path
    frames: int
    fps: float
    audio: Path | None = None
    video: Path | None = None
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{self.frames} frames at {self.fps:g} FPS in {self.folder}"]
        parts += [f"audio {self.audio.name}"] if self.audio else []
        parts += [f"video {self.video.name}"] if self.video else []
        return "; ".join(parts + self.notes)


def speech_poses(speech: Speech, templates: EmotionTemplates, *, fps: float = 25.0, emotion: str = "neutral",
                 seed: int = 0, settings: AnimatorSettings | None = None) -> Iterator[np.ndarray]:
    """The pose of every frame while ``speech`` is said (and a short tail): the animator on a fixed clock."""
    if not 0 < fps <= MAX_FPS:
        raise ValueError(f"fps must be above 0 and at most {MAX_FPS}, got {fps}")
    animator = Animator(templates, settings, emotion=emotion, seed=seed, now=0.0)
    animator.speak(speech.track, start=0.0)
    count = int(np.ceil((max(speech.duration, speech.track.end) + TAIL_SECONDS) * fps))
    for i in range(count):
        yield animator.pose(i / fps)


def ffmpeg_exe() -> str | None:
    """An ffmpeg to encode videos with: the ``imageio-ffmpeg`` wheel's, else one on the PATH, else None."""
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def record_speech(poser: Poser, character: Character, speech: Speech, templates: EmotionTemplates,
                  out_dir: str | os.PathLike, *, fps: float = 25.0, emotion: str = "neutral", seed: int = 0,
                  video: bool = True, background: tuple[int, int, int] = (255, 255, 255),
                  progress: Callable[[Iterator], Iterator] | None = None) -> Recording:
    """Write ``frame_00000.png`` …, ``speech.wav`` and (with ``video`` and an ffmpeg) ``speech.mp4`` — H.264 with
    AAC sound, the frames over ``background`` — into ``out_dir``. Every file appears whole or not at all; the video
    is made in a temporary folder first."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    poses = speech_poses(speech, templates, fps=fps, emotion=emotion, seed=seed)
    if progress is not None:
        poses = progress(poses)
    frames = 0
    for frames, pose in enumerate(poses, start=1):
        write_bytes(folder / f"frame_{frames - 1:05d}.png", encode_png(poser.render_array(character, pose)[0]))
    audio = write_bytes(folder / "speech.wav", speech.wav())
    recording = Recording(folder, frames, fps, audio=audio)
    if video:
        exe = ffmpeg_exe()
        if exe is None:
            recording.notes.append("no video: install imageio-ffmpeg (pip install imageio-ffmpeg) for an MP4")
        else:
            recording.video = _encode_mp4(exe, folder, fps, background)
    return recording


def _encode_mp4(exe: str, folder: Path, fps: float, background: tuple[int, int, int]) -> Path:
    target = folder / "speech.mp4"
    colour = "0x{:02x}{:02x}{:02x}".format(*background)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        partial = Path(scratch) / target.name
        command = [exe, "-v", "error", "-y", "-framerate", f"{fps:g}", "-i", str(folder / "frame_%05d.png"),
                   "-i", str(folder / "speech.wav"),
                   "-filter_complex", f"color=c={colour}:s=512x512[bg];[bg][0:v]overlay=shortest=1,format=yuv420p",
                   "-c:v", "libx264", "-crf", "20", "-c:a", "aac", "-b:a", "128k", "-shortest", str(partial)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg could not make the video ({result.stderr.strip()[-300:]}); the frames and "
                               f"the audio are in {folder}")
        os.replace(partial, target)
    return target
