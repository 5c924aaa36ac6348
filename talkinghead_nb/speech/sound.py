"""Audio in and out: a file, bytes or an array → float32 mono samples (refusing what is not usable audio), and
samples → WAV bytes."""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import numpy as np
import soundfile

from ..messages import short_repr
from .errors import SpeechError

AudioSource = str | os.PathLike | bytes | np.ndarray
MAX_SECONDS = 600.0
RATE_RANGE = (4000, 384_000)
MAX_CHANNELS = 16
FORMATS = "WAV, FLAC, OGG/Vorbis or MP3"


def _duration_check(frames: int, sample_rate: int, max_seconds: float, what: str) -> None:
    if frames == 0:
        raise SpeechError(f"{what} holds no samples: send some sound")
    if frames / sample_rate > max_seconds:
        raise SpeechError(f"{what} lasts {frames / sample_rate:.0f} s; the limit is {max_seconds:g} s: "
                          "split it into shorter parts")


def _from_array(audio: np.ndarray, sample_rate: object, max_seconds: float) -> tuple[np.ndarray, int]:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or not (
            RATE_RANGE[0] <= sample_rate <= RATE_RANGE[1]):
        raise SpeechError(f"an audio array needs its sample rate: an integer from {RATE_RANGE[0]} to "
                          f"{RATE_RANGE[1]} Hz, got {short_repr(sample_rate)}")
    if audio.dtype.kind not in "iuf":
        raise SpeechError(f"audio samples must be integers or floats, got dtype {audio.dtype}")
    if not (audio.ndim == 1 or audio.ndim == 2 and 0 < audio.shape[1] <= MAX_CHANNELS):
        raise SpeechError(f"audio must be 1-D (mono) or (samples, channels) with at most {MAX_CHANNELS} channels, "
                          f"got shape {audio.shape}")
    _duration_check(len(audio), int(sample_rate), max_seconds, "the audio")
    if audio.dtype.kind in "iu":
        info = np.iinfo(audio.dtype)
        audio = (audio.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    elif not np.isfinite(audio).all():
        raise SpeechError("the audio holds NaN or infinite samples")
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return audio.astype(np.float32), int(sample_rate)


def load_audio(source: AudioSource, sample_rate: int | None = None, *,
               max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Float32 mono samples and their rate, from a file path, the bytes of a file (WAV, FLAC, OGG/Vorbis, MP3), or an
    array with ``sample_rate`` (integers are scaled to -1…1, channels are averaged). Refuses anything else, empty
    audio, and audio longer than ``max_seconds``, with a :class:`SpeechError` saying why."""
    if isinstance(source, np.ndarray):
        return _from_array(source, sample_rate, max_seconds)
    if not isinstance(source, bytes | bytearray | memoryview | str | os.PathLike):
        raise SpeechError(f"audio must be a file path, the bytes of a file, or an array with its sample rate; "
                          f"got {type(source).__name__}")
    if sample_rate is not None:
        raise SpeechError("sample_rate goes with an array only; a file carries its own")
    if isinstance(source, str | os.PathLike):
        what, handle = f"audio file {Path(source).name}", Path(source)
        if not handle.is_file():
            raise SpeechError(f"no such audio file: {source}")
    else:
        what, handle = "the audio data", io.BytesIO(bytes(source))
        if not handle.getbuffer().nbytes:
            raise SpeechError("the audio data is empty (0 bytes): send a WAV, FLAC, OGG or MP3 file")
    try:
        with soundfile.SoundFile(handle) as f:
            _duration_check(f.frames, f.samplerate, max_seconds, what)
            audio = f.read(dtype="float32", always_2d=True)
            rate = f.samplerate
    except soundfile.SoundFileError as e:
        raise SpeechError(f"{what} is not audio that can be read ({FORMATS}): {e}") from None
    return _from_array(audio, rate, max_seconds)


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float samples (-1 to 1; louder is clipped) as a 16-bit PCM WAV file."""
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1, 1) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm.tobytes())
    return out.getvalue()
