"""Recordings: exact renders of the animation on a fixed clock, in every format, with sound where the format holds it,
written whole or not at all; scripts are checked like any other client input."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from talkinghead_nb.emotions import EmotionLibrary
from talkinghead_nb.recording import (
    TAIL_SECONDS,
    RecordingCancelled,
    Script,
    ScriptError,
    Step,
    record,
    record_speech,
    script_poses,
)
from talkinghead_nb.speech import synthesize
from talkinghead_nb.video import AnimationWriter, ffmpeg_exe

from .fake_engine import FakePoser

TEMPLATES = EmotionLibrary().load()
SCRIPT = Script(1.0, emotion="joy", steps=(Step(0.5, emotion="surprise", talking=True),))


def _probe(path) -> str:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def decoded(path, stream: str) -> tuple[int, float]:
    """How many frames of ``stream`` (``v``, ``a``) ffmpeg decodes from ``path``, and until what time in seconds."""
    done = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", f"file:{Path(path).absolute()}", "-map", f"0:{stream}",
                           "-f", "null", "-"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    frames = re.findall(r"frame=\s*(\d+)", done.stderr)
    hours, minutes, seconds = re.findall(r"time=(\d+):(\d+):([\d.]+)", done.stderr)[-1]
    return int(frames[-1]) if frames else 0, int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _engine_frames(poser, character, script: Script, fps: float) -> list[np.ndarray]:
    return [poser.render_array(character, pose)[0] for pose in script_poses(script, TEMPLATES, fps=fps)]


def _same_picture(decoded: np.ndarray, rendered: np.ndarray) -> bool:
    """Equal alpha everywhere and equal colour wherever something is visible (WebP may change colour under alpha 0)."""
    visible = rendered[..., 3] > 0
    return np.array_equal(decoded[..., 3], rendered[..., 3]) and np.array_equal(decoded[visible], rendered[visible])


@pytest.mark.parametrize("suffix", [".webp", ".png"])
def test_lossless_recordings_are_the_engine_renders_of_the_script(poser, character, tmp_path, suffix):
    out = tmp_path / f"clip{suffix}"
    recording = record(poser, character, TEMPLATES, out, SCRIPT, fps=4)
    expected = _engine_frames(poser, character, SCRIPT, 4)
    decoded = [np.asarray(frame.convert("RGBA")) for frame in ImageSequence.Iterator(Image.open(out))]
    assert recording.frames == len(decoded) == len(expected) == 4
    assert all(_same_picture(d, e) for d, e in zip(decoded, expected, strict=True))
    assert not np.array_equal(expected[0], expected[-1])  # the step changed the picture
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no scratch left


def test_video_and_gif_recordings_carry_alpha_or_sound_where_the_format_can(poser, character, tmp_path):
    speech = synthesize("Hi.")
    script = Script(speech.duration + TAIL_SECONDS, emotion="joy")
    webm = record(poser, character, TEMPLATES, tmp_path / "clip.webm", script, fps=4, speech=speech, speech_at=0.1)
    probe = _probe(webm.path)
    assert "Video: vp9" in probe and "alpha_mode" in probe and "Audio: opus" in probe, probe
    mp4 = record(poser, character, TEMPLATES, tmp_path / "clip.mp4", script, fps=4, speech=speech)
    assert "Video: h264" in _probe(mp4.path) and "Audio: aac" in _probe(mp4.path)
    gif = record(poser, character, TEMPLATES, tmp_path / "clip.gif", script, fps=4, speech=speech)
    assert gif.audio == tmp_path / "clip.wav" and gif.audio.read_bytes()[:4] == b"RIFF"
    first = Image.open(gif.path)
    assert first.n_frames == gif.frames and "transparency" in first.info
    assert "<img src='data:image/gif;base64," in gif._repr_html_()
    assert "<video" in webm._repr_html_()


def test_a_failed_recording_leaves_nothing_behind(tmp_path):
    target = tmp_path / "clip.webp"
    with pytest.raises(ValueError, match="a frame is a"), AnimationWriter(target, 10) as writer:
        writer.add(np.zeros((512, 512, 4), np.uint8))
        writer.add(np.zeros((100, 100, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="ffmpeg could not write clip.webm"), \
            AnimationWriter(tmp_path / "clip.webm", 10, audio=tmp_path / "no-such.wav") as writer:
        for _ in range(3):
            writer.add(np.zeros((512, 512, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"\.webp, \.png \(APNG\), \.gif, \.webm or \.mp4"):
        AnimationWriter(tmp_path / "clip.avi", 10)


@pytest.mark.parametrize(("data", "words"), [
    ({"seconds": 0}, "seconds must be a number above 0"),
    ({"seconds": 1e9}, "at most 600"),
    ({"seconds": "5"}, "seconds must be a number"),
    ({"seconds": 2, "emotion": "jooy"}, "unknown emotion 'jooy'; known: admiration"),
    ({"seconds": 2, "steps": [{"at": 3, "emotion": "joy"}]}, "a step at 3 s comes after the end"),
    ({"seconds": 2, "steps": [{"at": 1, "dance": True}]}, "steps[0]: an object with \"at\""),
    ({"seconds": 2, "steps": [{"at": 1, "talking": "yes"}]}, "steps[0].talking must be true or false"),
    ({"seconds": 2, "colour": "red"}, "unknown script field(s) 'colour'"),
    ([1, 2], "a script is a JSON object"),
])
def test_scripts_are_checked_with_messages_that_say_what_to_send(data, words):
    with pytest.raises(ScriptError) as caught:
        Script.from_json(data, TEMPLATES)
    assert words in str(caught.value)


def test_a_script_round_trips_through_json():
    assert Script.from_json(SCRIPT.to_json(), TEMPLATES) == SCRIPT


def test_a_speech_recording_is_exact_renders_with_audio_and_video(poser, character, tmp_path):
    speech = synthesize("Hi mom.")
    recording = record_speech(poser, character, speech, TEMPLATES, tmp_path, fps=4, emotion="joy")
    script = Script(max(speech.duration, speech.track.end) + TAIL_SECONDS, emotion="joy")
    poses = list(script_poses(script, TEMPLATES, fps=4, speech=speech))
    assert recording.frames == len(poses) >= int(speech.duration * 4)
    for i in (0, len(poses) // 2):  # frame i is the engine's render of the animator's pose at i / fps
        frame = np.asarray(Image.open(tmp_path / f"frame_{i:05d}.png"))
        assert np.array_equal(frame, poser.render_array(character, poses[i])[0])
    assert recording.audio.read_bytes()[:4] == b"RIFF"
    probe = _probe(recording.video)
    assert "Video: h264" in probe and "Audio: aac" in probe
    assert not list(tmp_path.glob(".recording-*")), "no scratch folder left behind"


def _cancel_at(frame: int, cancel: threading.Event):
    """A progress wrapper that sets ``cancel`` as the pose of ``frame`` is taken: as a client leaving then would."""
    def wrap(poses: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for i, pose in enumerate(poses):
            if i == frame:
                cancel.set()
            yield pose
    return wrap


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_slow_frames_outlasting_the_sound_all_arrive_with_the_sound_padded(character, tmp_path, suffix):
    """Frames that come slower than ffmpeg reads the sound (as from the engine on a CPU) and outlast it: every frame
    is in the file, with the sound padded with silence to the frames' length."""
    speech = synthesize("Hi.")
    script = Script(speech.duration + 0.8)
    recording = record(FakePoser(seconds_per_frame=0.25), character, TEMPLATES, tmp_path / f"clip{suffix}", script,
                       fps=5, speech=speech)
    assert recording.frames == round(script.seconds * 5) >= speech.duration * 5 + 3
    assert decoded(recording.path, "v")[0] == recording.frames
    assert decoded(recording.path, "a")[1] == pytest.approx(recording.seconds, abs=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [recording.path.name]


def test_a_slow_speech_recording_has_every_frame_in_its_video_and_sound_as_long(character, tmp_path):
    speech = synthesize("Hi.")
    out = tmp_path / "speech"
    recording = record_speech(FakePoser(seconds_per_frame=0.25), character, speech, TEMPLATES, out, fps=5)
    assert recording.frames == len(list(out.glob("frame_*.png"))) == decoded(recording.video, "v")[0]
    assert decoded(recording.video, "a")[1] == pytest.approx(recording.seconds, abs=0.1)
    assert decoded(recording.audio, "a")[1] == pytest.approx(recording.seconds, abs=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech"]


def test_a_cancelled_recording_stops_before_the_next_frame_and_leaves_nothing(character, tmp_path):
    poser, cancel = FakePoser(), threading.Event()
    with pytest.raises(RecordingCancelled, match="cancelled after 2 frame"):
        record(poser, character, TEMPLATES, tmp_path / "clip.webm", Script(2.0), fps=5, speech=synthesize("Hi."),
               cancel=cancel, progress=_cancel_at(2, cancel))
    assert poser.frames == 2
    cancel.clear()
    with pytest.raises(RecordingCancelled, match="cancelled after 3 frame"):
        record_speech(poser, character, synthesize("Hi."), TEMPLATES, tmp_path / "speech", fps=5, cancel=cancel,
                      progress=_cancel_at(3, cancel))
    assert poser.frames == 5 and list(tmp_path.iterdir()) == []
    assert record(poser, character, TEMPLATES, tmp_path / "clip.gif", Script(0.4), fps=5,
                  cancel=threading.Event()).frames == 2  # an event never set changes nothing


def test_existing_outputs_are_refused_or_replaced_whole(character, tmp_path):
    poser, clip = FakePoser(), tmp_path / "clip.gif"
    clip.write_bytes(b"earlier")
    with pytest.raises(FileExistsError, match="clip.gif exists: choose a new name, or pass overwrite=True"):
        record(poser, character, TEMPLATES, clip, Script(0.4), fps=5, overwrite=False)
    (tmp_path / "new.wav").write_bytes(b"earlier")
    with pytest.raises(FileExistsError, match="new.wav exists"):  # the sound beside it counts
        record(poser, character, TEMPLATES, tmp_path / "new.webp", Script(0.4), speech=synthesize("Hi."),
               overwrite=False)
    assert poser.frames == 0 and clip.read_bytes() == b"earlier"
    assert record(poser, character, TEMPLATES, clip, Script(0.4), fps=5, overwrite=True).frames == 2
    assert clip.read_bytes()[:6] == b"GIF89a"
    folder = tmp_path / "speech"
    long_one = record_speech(poser, character, synthesize("Hello there, how are you?"), TEMPLATES, folder, fps=5)
    with pytest.raises(FileExistsError, match="holds a recording already: choose a new folder, or pass overwrite"):
        record_speech(poser, character, synthesize("Hi."), TEMPLATES, folder, fps=5, overwrite=False)
    short = record_speech(poser, character, synthesize("Hi."), TEMPLATES, folder, fps=5, overwrite=True)
    assert short.frames < long_one.frames and len(list(folder.glob("frame_*.png"))) == short.frames  # none stale
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds other files \(notes.txt\): choose a new or empty folder"):
        record_speech(poser, character, synthesize("Hi."), TEMPLATES, folder, fps=5, overwrite=True)
    assert (folder / "notes.txt").exists() and not list(tmp_path.glob(".*"))


def test_arguments_are_checked_before_anything_is_made(character, tmp_path):
    with pytest.raises(ScriptError, match="fps must be above 0 and at most 60, got 0"):
        record_speech(FakePoser(), character, synthesize("Hi."), TEMPLATES, tmp_path / "new" / "speech", fps=0)
    with pytest.raises(ScriptError, match="fps must be above 0"):
        record(FakePoser(), character, TEMPLATES, tmp_path / "new" / "clip.webm", Script(1.0), fps=0)
    assert list(tmp_path.iterdir()) == []
