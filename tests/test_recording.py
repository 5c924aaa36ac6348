"""Recordings of speech: exact renders of the animation on a fixed clock, the audio beside them, and a video."""

from __future__ import annotations

import subprocess

import numpy as np
from PIL import Image

from talkinghead_nb.emotions import EmotionLibrary
from talkinghead_nb.recording import ffmpeg_exe, record_speech, speech_poses
from talkinghead_nb.speech import synthesize


def test_a_recording_is_exact_renders_of_the_speech_with_audio_and_video(poser, character, tmp_path):
    speech = synthesize("Hi mom.")
    templates = EmotionLibrary().load()
    recording = record_speech(poser, character, speech, templates, tmp_path, fps=4, emotion="joy")
    poses = list(speech_poses(speech, templates, fps=4, emotion="joy"))
    assert recording.frames == len(poses) >= int(speech.duration * 4)
    for i in (0, len(poses) // 2):  # frame i is the engine's render of the animator's pose at i / fps
        frame = np.asarray(Image.open(tmp_path / f"frame_{i:05d}.png"))
        assert np.array_equal(frame, poser.render_array(character, poses[i])[0])
    assert recording.audio.read_bytes()[:4] == b"RIFF"
    assert recording.video is not None and recording.video.stat().st_size > 10_000
    probe = subprocess.run([ffmpeg_exe(), "-i", str(recording.video)], capture_output=True, text=True)
    assert "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr
    assert not list(tmp_path.glob("tmp*")), "no scratch folder left behind"
