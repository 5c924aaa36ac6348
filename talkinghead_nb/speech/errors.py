"""The two ways speech can fail: input it cannot use (the server answers 4xx), and eSpeak NG not installed."""

from __future__ import annotations


class SpeechError(ValueError):
    """Text, audio, a timeline or a track that the speech package refuses; the message says what to change."""


class EspeakUnavailable(RuntimeError):
    """Text-to-speech needs the optional ``espeakng-loader`` package (eSpeak NG, GPL-3.0)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"eSpeak NG is not available ({detail}); text-to-speech and phonemising words need the "
                         "optional extra: pip install espeakng-loader (it bundles eSpeak NG, licensed GPL-3.0)")
