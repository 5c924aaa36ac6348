"""Recordings: exact renders of the animation at a fixed frame rate (not the live, render-bound rate), from a script
(how long, which emotion, talking, changes at given times) and optionally speech, written as an animation file
(WebP, APNG, GIF, WebM, MP4: :mod:`talkinghead_nb.video`) or as numbered PNG frames with the audio beside them.
Speech is padded with silence (or cut) to the frames' length, so sound and frames end together.

The animator runs on a clock of its own (frame ``i`` is at ``i / fps`` seconds), so a recording is the same on any
machine, and frame ``i`` equals the engine's render of the pose at ``i / fps`` (then the effect chain, if any, at
that time).
"""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_bytes
from .character import Character
from .emotions import EmotionTemplates
from .encoding import encode_png
from .engine import Poser
from .live.animator import Animator
from .live.settings import AnimatorSettings
from .messages import name_list, short_repr
from .speech import Speech, wav_bytes
from .video import SOUND_FORMATS, AnimationWriter, check_target, nearest_folder

MAX_FPS = 60
MAX_SECONDS = 600
MAX_STEPS = 256
TAIL_SECONDS = 0.3   # after speech: the mouth returns to the emotion's shape
INLINE_BYTES = 20 * 2**20  # a recording up to this size shows inline in a notebook
SPEECH_FILES = re.compile(r"frame_\d{5}\.png|speech\.wav|speech\.mp4")  # what record_speech writes


class ScriptError(ValueError):
    """A recording script that cannot be followed as given; the message says what to send instead."""


class RecordingCancelled(RuntimeError):
    """The ``cancel`` event of a recording was set: it stopped before the next frame and wrote nothing."""


@dataclass(frozen=True)
class Step:
    """At ``at`` seconds, switch to ``emotion`` and/or start or stop ``talking``."""

    at: float
    emotion: str | None = None
    talking: bool | None = None


@dataclass(frozen=True)
class Script:
    """What a recording shows: ``seconds`` long, starting in ``emotion`` (talking or not), with ``steps``."""

    seconds: float
    emotion: str = "neutral"
    talking: bool = False
    steps: tuple[Step, ...] = ()

    @classmethod
    def from_json(cls, data: Any, templates: EmotionTemplates, *, max_seconds: float = MAX_SECONDS) -> Script:
        """``{"seconds": 5, "emotion": "joy", "talking": false, "steps": [{"at": 2, "emotion": "surprise"},
        {"at": 3, "talking": true}]}``, checked against ``templates`` and the limits."""
        if not isinstance(data, dict):
            raise ScriptError(f"a script is a JSON object such as {{\"seconds\": 5, \"emotion\": \"joy\"}}, got "
                              f"{short_repr(data)}")
        unknown = sorted(set(data) - {"seconds", "emotion", "talking", "steps"})
        if unknown:
            raise ScriptError(f"unknown script field(s) {name_list([short_repr(n) for n in unknown])}; known: seconds, "
                              "emotion, talking, steps")
        steps = data.get("steps", [])
        if not isinstance(steps, list) or len(steps) > MAX_STEPS:
            raise ScriptError(f"steps: a list of at most {MAX_STEPS} objects such as {{\"at\": 2, \"emotion\": "
                              "\"joy\"}")
        script = cls(_number(data.get("seconds"), "seconds", 0, max_seconds, open_low=True),
                     _emotion(data.get("emotion", "neutral"), templates, "emotion"),
                     _flag(data.get("talking", False), "talking"),
                     tuple(_step(step, i, templates) for i, step in enumerate(steps)))
        late = [step.at for step in script.steps if step.at > script.seconds]
        if late:
            raise ScriptError(f"a step at {late[0]:g} s comes after the end ({script.seconds:g} s)")
        return script

    def to_json(self) -> dict[str, Any]:
        steps = [{key: value for key, value in vars(step).items() if value is not None} for step in self.steps]
        return {"seconds": self.seconds, "emotion": self.emotion, "talking": self.talking, "steps": steps}


def _number(value: Any, name: str, low: float, high: float, *, open_low: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high  # refuses NaN
    if not ok or (open_low and value == low):
        bound = f"above {low:g}" if open_low else f"at least {low:g}"
        raise ScriptError(f"{name} must be a number {bound} and at most {high:g}, got {short_repr(value)}")
    return float(value)


def _emotion(value: Any, templates: EmotionTemplates, name: str) -> str:
    if value not in templates.poses:
        raise ScriptError(f"{name}: unknown emotion {short_repr(value)}; known: {name_list(templates.names)}")
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ScriptError(f"{name} must be true or false, got {short_repr(value)}")
    return value


def _step(data: Any, index: int, templates: EmotionTemplates) -> Step:
    where = f"steps[{index}]"
    if not isinstance(data, dict) or "at" not in data or not set(data) <= {"at", "emotion", "talking"}:
        raise ScriptError(f"{where}: an object with \"at\" (seconds) and \"emotion\" and/or \"talking\", got "
                          f"{short_repr(data)}")
    return Step(_number(data["at"], f"{where}.at", 0, MAX_SECONDS),
                _emotion(data["emotion"], templates, f"{where}.emotion") if "emotion" in data else None,
                _flag(data["talking"], f"{where}.talking") if "talking" in data else None)


def script_poses(script: Script, templates: EmotionTemplates, *, fps: float = 25.0, seed: int = 0,
                 settings: AnimatorSettings | None = None, speech: Speech | None = None,
                 speech_at: float = 0.0) -> Iterator[np.ndarray]:
    """The pose of every frame of ``script`` (``speech`` said from ``speech_at`` s): the animator on a fixed clock."""
    check_fps(fps)
    animator = Animator(templates, settings, emotion=script.emotion, seed=seed, now=0.0)
    if script.talking:
        animator.start_talking()
    if speech is not None:
        animator.speak(speech.track, start=speech_at)
    pending = sorted(script.steps, key=lambda step: step.at)
    for i in range(frame_count(script.seconds, fps)):
        now = i / fps
        while pending and pending[0].at <= now:
            _apply(animator, pending.pop(0), now)
        yield animator.pose(now)


def check_fps(fps: float) -> float:
    """``fps`` if a recording can run at that rate; else a ScriptError that gives the range."""
    if not 0 < fps <= MAX_FPS:
        raise ScriptError(f"fps must be above 0 and at most {MAX_FPS}, got {fps:g}")
    return fps


def speech_seconds(speech: Speech) -> float:
    """How long a recording of ``speech`` lasts: the sound or the mouth's last move, whichever ends later, and a
    short tail (what a progress bar needs for its total)."""
    return max(speech.duration, speech.track.end) + TAIL_SECONDS


def frame_count(seconds: float, fps: float) -> int:
    """How many frames a recording ``seconds`` long at ``fps`` has (at least one)."""
    return max(1, round(seconds * fps))


def _apply(animator: Animator, step: Step, now: float) -> None:
    if step.emotion is not None:
        animator.set_emotion(step.emotion, now)
    if step.talking is not None:
        animator.start_talking() if step.talking else animator.stop_talking()


@dataclass
class Recording:
    """What a recording wrote: ``path`` (an animation file, or the folder of frames), frame count, rate, audio."""

    path: Path
    frames: int
    fps: float
    audio: Path | None = None
    video: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def __str__(self) -> str:
        parts = [f"{self.frames} frames at {self.fps:g} FPS ({self.seconds:.1f} s) in {self.path}"]
        parts += [f"audio {self.audio.name}"] if self.audio else []
        parts += [f"video {self.video.name}"] if self.video else []
        return "; ".join(parts + self.notes)

    def _repr_html_(self) -> str:
        """The clip itself in a notebook (an <img> or a <video>), when it is a file small enough to embed."""
        shown = self.video or self.path
        caption = f"<div>{html.escape(str(self))}</div>"
        if not shown.is_file() or shown.stat().st_size > INLINE_BYTES:
            return caption
        data = base64.b64encode(shown.read_bytes()).decode()
        kind = {".webp": "image/webp", ".png": "image/png", ".gif": "image/gif", ".webm": "video/webm",
                ".mp4": "video/mp4"}[shown.suffix.lower()]
        if kind.startswith("video"):
            return f"<video controls loop autoplay muted src='data:{kind};base64,{data}' width=512></video>{caption}"
        return f"<img src='data:{kind};base64,{data}' width=512>{caption}"


def render_frames(poser: Poser, character: Character, poses: Iterator[np.ndarray], *, fps: float,
                  effects: Any = None, cancel: threading.Event | None = None) -> Iterator[np.ndarray]:
    """``(512, 512, 4) uint8`` frames: the engine's render of each pose, then ``effects`` (an effect chain) at the
    frame's time. ``cancel``, checked before each frame: once set, :class:`RecordingCancelled` is raised."""
    if effects is not None:
        from .effects import to_display, to_rgba_array
    for i, pose in enumerate(poses):
        if cancel is not None and cancel.is_set():
            raise RecordingCancelled(f"the recording was cancelled after {i} frame(s); nothing was written")
        if effects is None:
            yield poser.render_array(character, pose)[0]
        else:
            yield to_rgba_array(effects.apply(to_display(poser.render_tensor(character, pose)), i / fps))[0]


def record(poser: Poser, character: Character, templates: EmotionTemplates, out: str | os.PathLike,
           script: Script, *, fps: float = 25.0, speech: Speech | None = None, speech_at: float = 0.0,
           seed: int = 0, settings: AnimatorSettings | None = None, effects: Any = None,
           background: tuple[int, int, int] = (255, 255, 255), overwrite: bool = True,
           cancel: threading.Event | None = None,
           progress: Callable[[Iterator], Iterator] | None = None) -> Recording:
    """Record ``script`` into ``out`` (``.webp``, ``.png``, ``.gif``, ``.webm``, ``.mp4``); with ``speech``, the
    sound goes into WebM and MP4 and beside the others as ``<name>.wav``. The file appears whole or not at all; an
    existing one is replaced only with ``overwrite`` (else a FileExistsError before any work). ``cancel``: an event
    that stops the recording before its next frame (:class:`RecordingCancelled`, nothing written)."""
    target = check_target(out, audio=speech is not None, overwrite=overwrite)
    poses = script_poses(script, templates, fps=check_fps(fps), seed=seed, settings=settings, speech=speech,
                         speech_at=speech_at)
    frames = render_frames(poser, character, progress(poses) if progress else poses, fps=fps, effects=effects,
                           cancel=cancel)
    audio = None if speech is None else _sound(speech, speech_at, frame_count(script.seconds, fps) / fps)
    with AnimationWriter(target, fps, audio=audio, background=background, overwrite=overwrite) as writer:
        for frame in frames:
            writer.add(frame)
    beside = speech is not None and target.suffix.lower() not in SOUND_FORMATS  # else the sound is inside
    return Recording(target, writer.frames, fps, audio=target.with_suffix(".wav") if beside else None)


def _sound(speech: Speech, start: float, seconds: float) -> bytes:
    """The WAV of ``speech`` said from ``start`` s in a recording ``seconds`` long: silence before it, and after it
    to the end (or cut there), so that the sound starts with the mouth and ends with the last frame."""
    rate = speech.sample_rate
    audio = np.zeros(round(seconds * rate), np.float32)
    offset = min(round(start * rate), len(audio))
    said = speech.audio[:len(audio) - offset]
    audio[offset:offset + len(said)] = said
    return wav_bytes(audio, rate)


def check_speech_folder(out_dir: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """``out_dir`` as a Path if :func:`record_speech` may write its recording there: a new or empty folder, or with
    ``overwrite`` one that holds an earlier recording only (it is replaced whole); else a FileExistsError that says
    what to do, before any work."""
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file: choose a folder for the recording")
    if not folder.exists():
        return folder
    names = sorted(path.name for path in folder.iterdir())
    others = [name for name in names if not SPEECH_FILES.fullmatch(name)]
    if others:
        raise FileExistsError(f"{folder} holds other files ({', '.join(others[:3])}{', …' if others[3:] else ''}): "
                              "choose a new or empty folder for the recording")
    if names and not overwrite:
        raise FileExistsError(f"{folder} holds a recording already: choose a new folder, or pass overwrite=True to "
                              "replace it")
    return folder


@contextmanager
def _whole_folder(folder: Path) -> Iterator[Path]:
    """A scratch folder beside ``folder`` to fill; when the block ends without an error it replaces ``folder``
    whole (what was there is removed, never merged); otherwise it is removed."""
    scratch = Path(tempfile.mkdtemp(dir=nearest_folder(folder), prefix=f".{folder.name}-"))
    old = scratch.with_name(f"{scratch.name}-old")
    try:
        yield scratch
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.is_dir() and any(folder.iterdir()):
            folder.rename(old)
        try:
            scratch.rename(folder)  # an empty folder there is replaced
        except BaseException:
            if old.exists():
                old.rename(folder)  # put the earlier recording back
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def record_speech(poser: Poser, character: Character, speech: Speech, templates: EmotionTemplates,
                  out_dir: str | os.PathLike, *, fps: float = 25.0, emotion: str = "neutral", seed: int = 0,
                  video: bool = True, background: tuple[int, int, int] = (255, 255, 255), overwrite: bool = True,
                  cancel: threading.Event | None = None,
                  progress: Callable[[Iterator], Iterator] | None = None) -> Recording:
    """Write ``frame_00000.png`` …, ``speech.wav`` (as long as the frames) and (with ``video``) ``speech.mp4`` —
    H.264 with AAC sound, the frames over ``background`` — into the folder ``out_dir``. The folder appears whole or
    not at all; one that holds an earlier recording is replaced whole with ``overwrite`` (see
    :func:`check_speech_folder`). ``cancel``: an event that stops the recording before its next frame
    (:class:`RecordingCancelled`, nothing written)."""
    folder = check_speech_folder(out_dir, overwrite=overwrite)
    script = Script(speech_seconds(speech), emotion=emotion)
    poses = script_poses(script, templates, fps=check_fps(fps), seed=seed, speech=speech)
    frames = render_frames(poser, character, progress(poses) if progress else poses, fps=fps, cancel=cancel)
    with _whole_folder(folder) as scratch:
        audio = write_bytes(scratch / "speech.wav", _sound(speech, 0.0, frame_count(script.seconds, fps) / fps))
        writer = AnimationWriter(scratch / "speech.mp4", fps, audio=audio, background=background) if video else None
        with writer or nullcontext():
            count = _write_pngs(frames, scratch, writer)
    return Recording(folder, count, fps, audio=folder / audio.name, video=folder / "speech.mp4" if video else None)


def _write_pngs(frames: Iterator[np.ndarray], folder: Path, writer: AnimationWriter | None) -> int:
    """Each frame as ``frame_NNNNN.png`` in ``folder`` (and into ``writer``); how many there were."""
    count = 0
    for count, frame in enumerate(frames, start=1):
        write_bytes(folder / f"frame_{count - 1:05d}.png", encode_png(frame))
        if writer is not None:
            writer.add(frame)
    return count
