"""Audio → viseme track, for any TTS or a recording, with no model: openness from the short-time energy (behind a
noise gate), the vowel from the spectral shape.

Every 10 ms the analysis measures the level of a 25 ms window and, where there is sound, estimates the first two
formants by linear prediction (the resonances of the vocal tract: F1 rises as the jaw opens, F2 as the tongue moves
forward). The nearest reference vowel in (log F1, log F2) names an IPA vowel; noise-like frames (most energy above
3 kHz: s, f, sh…) count as "s". The viseme table then maps these symbols to mouth shapes, so a user's table tunes
audio tracks too. Frames below the gate are silence: the mouth closes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from .phonemes import TimedPhoneme, track_from_phonemes
from .sound import BLOCK_FRAMES, MAX_SECONDS, AudioSource, mono_blocks
from .track import Track
from .visemes import VisemeTable

ANALYSIS_RATE = 12_000
HOP = 120      # samples at ANALYSIS_RATE: 10 ms
ENVELOPE_RATE = ANALYSIS_RATE / HOP
WINDOW = 300   # 25 ms
LPC_ORDER = 14
BLOCK = 512    # frames analysed at once (bounds the memory for long audio: about 13 MB)
# Reference formants (Hz) of one vowel per mouth shape, between typical men's and women's values (after Peterson
# and Barney 1952), by IPA symbol.
VOWELS: dict[str, tuple[float, float]] = {
    "i": (300, 2400), "ɛ": (580, 1900), "æ": (750, 1800), "ɑ": (800, 1250), "ɔ": (600, 950), "u": (340, 900),
    "ə": (520, 1450),
}
FRICATIVE = "s"
DEFAULT_GATE = -50.0  # dBFS


@dataclass(frozen=True)
class Analysis:
    """Per 10 ms frame: the time of its centre (s), the level (dBFS), the openness (0 to 1) and the symbol."""

    times: np.ndarray
    level: np.ndarray
    openness: np.ndarray
    symbols: np.ndarray


def _lpc(frames: np.ndarray, order: int) -> np.ndarray:
    """Linear-prediction coefficients (1, a1, …, a_order) of each row, by Levinson–Durbin on all rows at once."""
    spectrum = np.fft.rfft(frames, n=2 * frames.shape[1], axis=1)
    r = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :order + 1]
    r[:, 0] *= 1 + 1e-9  # white-noise correction keeps the recursion stable on near-silent frames
    a = np.zeros((len(frames), order + 1))
    a[:, 0] = 1
    error = r[:, 0].copy()
    for i in range(1, order + 1):
        k = -(a[:, :i] * r[:, i:0:-1]).sum(axis=1) / np.maximum(error, 1e-20)
        a[:, 1:i + 1] += k[:, None] * a[:, i - 1::-1][:, :i]
        error *= 1 - k * k
    return a


def _formants(a: np.ndarray) -> np.ndarray:
    """F1 and F2 (Hz) of each LPC polynomial: the two lowest sharp resonances above 150 Hz (NaN where missing)."""
    order = a.shape[1] - 1
    companion = np.zeros((len(a), order, order))
    companion[:, 0, :] = -a[:, 1:]
    companion[:, np.arange(1, order), np.arange(order - 1)] = 1
    roots = np.linalg.eigvals(companion)
    frequency = np.angle(roots) * ANALYSIS_RATE / (2 * np.pi)
    bandwidth = -np.log(np.maximum(np.abs(roots), 1e-12)) * ANALYSIS_RATE / np.pi
    frequency = np.where((roots.imag > 0) & (frequency > 150) & (bandwidth < 500), frequency, np.inf)
    lowest = np.sort(frequency, axis=1)[:, :2]
    return np.where(np.isfinite(lowest), lowest, np.nan)


def _blocks(x: np.ndarray) -> Iterator[np.ndarray]:
    """The analysis frames of ``x`` (at ANALYSIS_RATE), centred every 10 ms from time 0, a block at a time."""
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (WINDOW // 2, WINDOW // 2)), WINDOW)[::HOP]
    for at in range(0, len(frames), BLOCK):
        yield frames[at:at + BLOCK].astype(np.float64)


def _levels(x: np.ndarray) -> np.ndarray:
    """The level (dBFS) of each frame."""
    return np.concatenate([10 * np.log10(np.mean(block ** 2, axis=1) + 1e-12) for block in _blocks(x)])


def _spectral(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The high-frequency share of the energy, and (F1, F2), of each frame."""
    window = np.hamming(WINDOW)
    high = np.fft.rfftfreq(WINDOW, 1 / ANALYSIS_RATE) > 3000
    hf, formants = [], []
    for block in _blocks(x):
        power = np.abs(np.fft.rfft(block * window, axis=1)) ** 2
        hf.append(power[:, high].sum(axis=1) / np.maximum(power.sum(axis=1), 1e-20))
        emphasised = np.diff(block, axis=1, prepend=0) * window  # pre-emphasis flattens the voice's spectral tilt
        formants.append(_formants(_lpc(emphasised, LPC_ORDER)))
    return np.concatenate(hf), np.concatenate(formants)


def _openness(level: np.ndarray, gate_db: float) -> np.ndarray:
    """0 at the noise gate, 1 at the loud parts of this audio. The gate is the highest of ``gate_db`` (absolute),
    40 dB below the loud parts, and 6 dB above the noise floor when the audio has pauses to measure it in."""
    loud = np.percentile(level, 95)
    floor = np.percentile(level, 10)
    gate = max(gate_db, loud - 40, floor + 6 if loud - floor > 20 else -np.inf)
    if loud <= gate:
        return np.zeros_like(level)
    openness = np.clip((level - gate) / (loud - gate), 0, 1)
    return ndimage.convolve1d(openness, np.full(3, 1 / 3), mode="nearest")  # exact zeros stay zero


def _classify(hf: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """The nearest reference vowel per frame, or the fricative symbol; smoothed so it does not flicker."""
    names = np.array([*VOWELS, FRICATIVE])
    reference = np.log(np.array(list(VOWELS.values())))
    logf = np.log(formants)
    logf = np.where(np.isnan(logf), np.log(VOWELS["ə"]), logf)  # no clear formants: the neutral vowel
    logf = ndimage.median_filter(logf, size=(5, 1), mode="nearest")
    distance = ((logf[:, None, :] - reference[None]) ** 2).sum(axis=2)
    choice = np.where(hf > 0.5, len(VOWELS), distance.argmin(axis=1))
    votes = ndimage.uniform_filter1d(np.eye(len(names))[choice], size=5, axis=0, mode="nearest")
    return names[votes.argmax(axis=1)]


def _pieces(audio: np.ndarray) -> Iterator[np.ndarray]:
    return (audio[at:at + BLOCK_FRAMES] for at in range(0, len(audio), BLOCK_FRAMES))


def _resampled(blocks: Iterable[np.ndarray], sample_rate: int) -> tuple[np.ndarray, int]:
    """Mono samples, given in blocks, at ANALYSIS_RATE, and how many samples came in. The same as
    ``signal.resample_poly`` on the whole signal (same filter), computed a piece at a time: each piece of input
    (a multiple of the decimation factor, so that the output grid lines up) is resampled with enough input on both
    sides for the filter, so only the analysis-rate samples are kept whole, not the input nor a float64 copy."""
    if sample_rate == ANALYSIS_RATE:
        x = np.concatenate([np.zeros(0, np.float32), *blocks])
        return x, len(x)
    ratio = np.gcd(ANALYSIS_RATE, sample_rate)
    up, down = ANALYSIS_RATE // ratio, sample_rate // ratio
    half_len = 10 * max(up, down)  # resample_poly's own filter design, made once
    taps = signal.firwin(2 * half_len + 1, 1 / max(up, down), window=("kaiser", 5.0)).astype(np.float32)
    margin = -(-(half_len // up + 2) // down) * down  # the input the filter reaches, in whole multiples of down
    step = max(-(-BLOCK_FRAMES // down) * down, 4 * margin)  # input resampled at once (a multiple of down too)
    pending, base, start, out = np.zeros(0, np.float32), 0, 0, []  # pending: the input from sample base on

    def piece(stop: int, last: bool) -> None:
        """The output for the input from ``start`` to ``stop`` (``last``: the input ends there)."""
        y = signal.resample_poly(pending[:stop - base + (0 if last else margin)], up, down, window=taps)
        skip = (start - base) * up // down
        out.append(y[skip:skip - (-(stop - start) * up // down)])

    for block in blocks:
        pending = np.concatenate([pending, block])
        while base + len(pending) >= start + step + margin:
            piece(start + step, last=False)
            start += step
            drop = max(0, start - margin) - base
            pending, base = pending[drop:], base + drop
    total = base + len(pending)
    piece(total, last=True)
    return np.concatenate(out), total


def envelope(audio: np.ndarray, sample_rate: int, *, gate_db: float = DEFAULT_GATE) -> np.ndarray:
    """The loudness of float mono samples (any rate), 0 to 1, ``ENVELOPE_RATE`` values a second from time 0."""
    return _openness(_levels(_resampled(_pieces(audio), sample_rate)[0]), gate_db)


def _analyse(x: np.ndarray, gate_db: float) -> Analysis:
    level = _levels(x)
    return Analysis(np.arange(len(level)) / ENVELOPE_RATE, level, _openness(level, gate_db), _classify(*_spectral(x)))


def analyse(audio: np.ndarray, sample_rate: int, *, gate_db: float = DEFAULT_GATE) -> Analysis:
    """The per-frame measurements behind :func:`track_from_audio` (float mono samples, any rate)."""
    return _analyse(_resampled(_pieces(audio), sample_rate)[0], gate_db)


def track_from_audio(audio: AudioSource, sample_rate: int | None = None, *, table: VisemeTable | None = None,
                     gate_db: float = DEFAULT_GATE, max_seconds: float = MAX_SECONDS) -> Track:
    """The mouth for speech audio: a file path, the bytes of a WAV/FLAC/OGG/MP3 file, or an array with its
    ``sample_rate``. The shapes follow the vowel class of each stretch of sound, the opening follows the loudness;
    ``gate_db`` is the level (dBFS) below which it is silence. A file is checked from its header, then decoded,
    mixed down and resampled a block at a time: memory stays that of the audio at the analysis rate."""
    rate, blocks = mono_blocks(audio, sample_rate, max_seconds=max_seconds)
    x, frames = _resampled(blocks, rate)
    result = _analyse(x, gate_db)
    sounding = result.openness > 0
    # One phoneme per run of frames with the same symbol; silent frames are pauses.
    symbols = np.where(sounding, result.symbols, "")
    starts = np.flatnonzero(np.r_[True, symbols[1:] != symbols[:-1]])
    ends = np.r_[starts[1:], len(symbols)]
    phonemes = [TimedPhoneme(max(0.0, (s - 0.5) / ENVELOPE_RATE), (e - 0.5) / ENVELOPE_RATE, str(symbols[s]))
                for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]  # frame i is centred at i / rate
    return track_from_phonemes(phonemes, table or VisemeTable.factory(), duration=frames / rate,
                               envelope=result.openness, envelope_rate=ENVELOPE_RATE)
