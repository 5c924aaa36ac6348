"""The two ways speech can fail: input it cannot use (the server answers 4xx), and eSpeak NG not installed; and the
check every piece of text goes through."""

from __future__ import annotations


class SpeechError(ValueError):
    """Text, audio, a timeline or a track that the speech package refuses; the message says what to change."""


class EspeakUnavailable(RuntimeError):
    """Text-to-speech needs the optional ``espeakng-loader`` package (eSpeak NG, GPL-3.0)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"eSpeak NG is not available ({detail}); text-to-speech and phonemising words need the "
                         "optional extra: pip install espeakng-loader (it bundles eSpeak NG, licensed GPL-3.0)")


def check_unicode(text: str, what: str) -> None:
    """Refuse text that has no UTF-8 form: a lone surrogate (half of a UTF-16 pair, such as a JSON ``"\\ud800"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise SpeechError(f"{what} must be valid Unicode: character {e.start} is a lone surrogate "
                          f"(U+{ord(text[e.start]):04X}, half of a UTF-16 pair, not a character); send the text as "
                          "UTF-8 or with complete surrogate pairs") from None
