"""Audio in and out: a file, bytes or an array → float32 mono samples (refusing what is not usable audio), and
samples → WAV bytes."""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile

from ..messages import short_repr
from .errors import SpeechError

AudioSource = str | os.PathLike | bytes | np.ndarray
MAX_SECONDS = 600.0
RATE_RANGE = (4000, 384_000)
MAX_CHANNELS = 16
MAX_SAMPLES = 600 * 48_000 * 2  # frames × channels one piece of audio may hold: ten minutes of 48 kHz stereo
BLOCK_FRAMES = 65_536  # frames decoded (and mixed down to mono) at a time
FORMATS = "WAV, FLAC, OGG/Vorbis or MP3"
_UNKNOWN_FRAMES = 2 ** 63 - 1  # libsndfile's frame count for a file that does not say how long it is


def _check_size(frames: int, channels: int, sample_rate: int, max_seconds: float, what: str) -> None:
    """Refuse audio from its shape alone (for a file, its header: before anything is decoded)."""
    if not RATE_RANGE[0] <= sample_rate <= RATE_RANGE[1]:
        raise SpeechError(f"{what} has a sample rate of {sample_rate} Hz; the rates that can be used are "
                          f"{RATE_RANGE[0]} to {RATE_RANGE[1]} Hz: resample it (16000 to 48000 Hz is plenty)")
    if not 0 < channels <= MAX_CHANNELS:
        raise SpeechError(f"{what} has {channels} channels; the limit is {MAX_CHANNELS}: mix it down to mono")
    if frames == _UNKNOWN_FRAMES:
        raise SpeechError(f"{what} does not say how long it is (a stream?): save it as a complete file")
    if frames == 0:
        raise SpeechError(f"{what} holds no samples: send some sound")
    if frames / sample_rate > max_seconds:
        raise SpeechError(f"{what} lasts {frames / sample_rate:.0f} s; the limit is {max_seconds:g} s: "
                          "split it into shorter parts")
    if frames * channels > MAX_SAMPLES:
        raise SpeechError(f"{what} holds {frames * channels} samples over its channels; the limit is {MAX_SAMPLES} "
                          "(ten minutes of 48 kHz stereo): lower its sample rate, mix it down to mono, or split it")


def _array_blocks(audio: np.ndarray) -> Iterator[np.ndarray]:
    """A checked array's samples as float32 mono, a block at a time (integers scaled to -1…1, channels averaged)."""
    for at in range(0, len(audio), BLOCK_FRAMES):
        block = audio[at:at + BLOCK_FRAMES]
        if block.dtype.kind in "iu":
            info = np.iinfo(block.dtype)
            block = (block.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
        elif not np.isfinite(block).all():
            raise SpeechError("the audio holds NaN or infinite samples")
        yield (block.mean(axis=1) if block.ndim == 2 else block).astype(np.float32)


def _from_array(audio: np.ndarray, sample_rate: object, max_seconds: float) -> tuple[int, Iterator[np.ndarray]]:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or not (
            RATE_RANGE[0] <= sample_rate <= RATE_RANGE[1]):
        raise SpeechError(f"an audio array needs its sample rate: an integer from {RATE_RANGE[0]} to "
                          f"{RATE_RANGE[1]} Hz, got {short_repr(sample_rate)}")
    if audio.dtype.kind not in "iuf":
        raise SpeechError(f"audio samples must be integers or floats, got dtype {audio.dtype}")
    if not (audio.ndim == 1 or audio.ndim == 2 and 0 < audio.shape[1] <= MAX_CHANNELS):
        raise SpeechError(f"audio must be 1-D (mono) or (samples, channels) with at most {MAX_CHANNELS} channels, "
                          f"got shape {audio.shape}")
    _check_size(len(audio), audio.shape[1] if audio.ndim == 2 else 1, int(sample_rate), max_seconds, "the audio")
    return int(sample_rate), _array_blocks(audio)


def _unreadable(what: str, error: soundfile.SoundFileError) -> SpeechError:
    """The error for a file libsndfile cannot read: its reason, without soundfile's repr of the file object."""
    reason = error.error_string if isinstance(error, soundfile.LibsndfileError) else str(error)
    return SpeechError(f"{what} is not audio that can be read ({FORMATS}): "
                       f"{reason.rstrip('.') or 'it is damaged or cut short'}")


def _file_blocks(f: soundfile.SoundFile, what: str) -> Iterator[np.ndarray]:
    """A checked file's samples as float32 mono, a block at a time. It never asks the decoder for more than the
    frames the header announced (already within the limits), whatever the data holds."""
    try:
        with f:
            for at in range(0, f.frames, BLOCK_FRAMES):
                block = f.read(min(BLOCK_FRAMES, f.frames - at), dtype="float32", always_2d=True)
                if not len(block):  # shorter than its header said (MP3 headers estimate)
                    return
                yield block.mean(axis=1)
    except soundfile.SoundFileError as e:
        raise _unreadable(what, e) from None


def mono_blocks(source: AudioSource, sample_rate: int | None = None, *,
                max_seconds: float = MAX_SECONDS) -> tuple[int, Iterator[np.ndarray]]:
    """The sample rate and the samples of ``source`` (as for :func:`load_audio`) as float32 mono blocks of at most
    ``BLOCK_FRAMES``, decoded while the blocks are taken: memory stays that of the mono samples a caller keeps. A
    file's rate, channels, duration and size (at most ``MAX_SAMPLES`` samples over all channels) are checked from
    its header, before any decoding."""
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
        f = soundfile.SoundFile(handle)
    except soundfile.SoundFileError as e:
        raise _unreadable(what, e) from None
    try:
        _check_size(f.frames, f.channels, f.samplerate, max_seconds, what)
    except SpeechError:
        f.close()
        raise
    return f.samplerate, _file_blocks(f, what)


def load_audio(source: AudioSource, sample_rate: int | None = None, *,
               max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Float32 mono samples and their rate, from a file path, the bytes of a file (WAV, FLAC, OGG/Vorbis, MP3), or an
    array with ``sample_rate`` (integers are scaled to -1…1, channels are averaged). Refuses anything else, empty
    audio, audio longer than ``max_seconds`` and audio of more than ``MAX_SAMPLES`` samples (a file: from its header,
    before decoding it), with a :class:`SpeechError` saying why. A file is decoded a block at a time, each mixed down
    to mono, so memory stays that of the mono samples."""
    rate, blocks = mono_blocks(source, sample_rate, max_seconds=max_seconds)
    return np.concatenate([np.zeros(0, np.float32), *blocks]), rate


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
