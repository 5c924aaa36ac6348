"""Speech on this machine: synthesising a ~10 s sentence with eSpeak NG and building its track, the same track from
the audio alone and from a timeline, the cost of the mouth per frame, and (``--live``) the live server's feed while
the real engine speaks the sentence: parts sent and new frames rendered per second.

    python bench/speech.py [--repeat 5] [--live]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talkinghead_nb.speech import (  # noqa: E402
    VisemeTable,
    synthesize,
    track_from_audio,
    track_from_phonemes,
    track_from_timeline,
)
from talkinghead_nb.speech.audio import envelope  # noqa: E402

TEXT = ("Good evening, and welcome back. Today we will look at how a single picture of a character can learn to "
        "speak: every vowel opens the mouth a little differently, and every b, m and p closes it again.")


def timed(work: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Mean wall time (ms) of ``work`` after one warm-up call, and its result."""
    result = work()
    start = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - start) / repeat * 1e3, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--live", action="store_true", help="also measure the live feed while the engine speaks")
    args = parser.parse_args()
    table = VisemeTable.factory()
    total_ms, speech = timed(lambda: synthesize(TEXT), args.repeat)
    seconds = speech.duration
    track_ms, _ = timed(lambda: track_from_phonemes(speech.phonemes, table, seconds,
                                                    envelope=envelope(speech.audio, speech.sample_rate)), args.repeat)
    audio_ms, audio_track = timed(lambda: track_from_audio(speech.audio, speech.sample_rate), args.repeat)
    timeline = json.dumps([{"phoneme": p.phoneme, "start": p.start, "end": p.end} for p in speech.phonemes])
    timeline_ms, _ = timed(lambda: track_from_timeline(timeline), args.repeat)
    frame_ms, _ = timed(lambda: speech.track.mouth(seconds / 2), 1000)
    frames = np.arange(0, seconds, 1 / 60)
    batch_ms, _ = timed(lambda: speech.track.mouth_array(frames), args.repeat)
    print(f"sentence: {seconds:.1f} s of audio, {len(speech.phonemes)} phonemes, {len(speech.track)} keyframes, "
          f"track JSON {len(json.dumps(speech.track.to_json())) / 1024:.0f} KiB")
    print(f"{'step':44} {'ms':>8} {'× real time':>12}")
    for name, ms in (("text → audio + track (synthesize)", total_ms),
                     ("  of which the track (envelope + keyframes)", track_ms),
                     (f"audio → track ({len(audio_track)} keyframes)", audio_ms),
                     ("timeline JSON → track", timeline_ms)):
        print(f"{name:44} {ms:8.1f} {seconds * 1e3 / ms:12.0f}")
    print(f"mouth(t) per frame: {frame_ms * 1e3:.0f} µs; "
          f"mouth_array of {len(frames)} frames at 60 FPS: {batch_ms:.1f} ms")
    quality(speech, audio_track, table)
    if args.live:
        live_feed_while_speaking(speech)


def quality(speech, audio_track, table: VisemeTable) -> None:
    """How well the mouth follows the sound: Pearson r of the openness with the audio's loudness (every 10 ms),
    and when the lips first shut against the start of each b/m/p eSpeak reports."""
    times = np.arange(0, speech.duration, 0.01)
    window = np.hanning(int(0.05 * speech.sample_rate))  # RMS in 50 ms: a measure of our own, not the product's
    power = np.convolve(speech.audio.astype(np.float64) ** 2, window / window.sum(), mode="same")
    loudness = np.sqrt(np.interp(times, np.arange(len(speech.audio)) / speech.sample_rate, power))
    for name, track in (("eSpeak's track", speech.track), ("the track from the audio alone", audio_track)):
        print(f"openness vs loudness, {name}: r = {np.corrcoef(track.openness(times), loudness)[0, 1]:.3f}")
    offsets = []
    for phoneme in speech.phonemes:
        if any(part.shape == "closed" for part in table.parts(phoneme.phoneme)):
            around = np.arange(phoneme.start - 0.04, phoneme.end, 0.001)  # -40: shut already (a pause, an m before)
            shut = around[speech.track.openness(around) < 0.02]
            offsets.append((shut[0] - phoneme.start) * 1e3 if len(shut) else np.nan)
    offsets = np.array(offsets)
    print(f"lips first shut vs the start of each of {len(offsets)} b/m/p (ms): min {np.nanmin(offsets):+.0f}, "
          f"mean {np.nanmean(offsets):+.0f}, max {np.nanmax(offsets):+.0f}; never shut: {int(np.isnan(offsets).sum())}")


def live_feed_while_speaking(speech) -> None:
    """The default feed of a real server (real engine, allocator tuned as `serve` does) while it says ``speech``."""
    import httpx

    from talkinghead_nb.engine.acceleration import retain_freed_memory
    from talkinghead_nb.live import LiveServer
    retain_freed_memory()
    with LiveServer("lambda_00", port=0) as server:
        session = server.session()
        with httpx.stream("GET", server.feed_url(), timeout=60) as feed:
            parts, started, rendered = 0, None, 0
            for chunk in feed.iter_bytes():
                parts += chunk.count(b"--frame\r\n")
                if started is None and parts:
                    session.speak(speech.track)
                    started, rendered = time.monotonic(), session.pump.frames_rendered
                if started and time.monotonic() - started >= speech.duration:
                    break
        seconds = time.monotonic() - started
        print(f"live feed while speaking {seconds:.1f} s: {parts / seconds:.1f} parts/s sent, "
              f"{(session.pump.frames_rendered - rendered) / seconds:.1f} new frames/s rendered ({server.poser})")


if __name__ == "__main__":
    main()
