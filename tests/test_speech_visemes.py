"""The viseme table: its cascade (one bad entry spoils nothing else), how phonemes split into shapes, and that every
IPA symbol eSpeak NG speaks for English lands on a shape."""

from __future__ import annotations

import json

import pytest

from talkinghead_nb.speech import VisemeTable, load_visemes, synthesize, track_from_timeline, visemes_file

# Phonetically rich: every English vowel, diphthong and consonant, syllabic consonants, glottal stops, loan sounds.
RICH_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs; the judge measured their vision with pleasure.",
    "A boy in a cowboy hat took a book about the north, south, east and west to a faraway house.",
    "Her father thought that nothing was better than a bath in the warm sea: sure, their tour was near.",
    "The little button on the bottle fell; I'm hearing the birds, and she's wearing pure yellow shoes.",
    "Loch Ness, Llanelli, and Bach: hmm, uh-oh, the kitten's mittens were written on a cotton curtain.",
    "Theodore, are you bored? Our flowers, fire and hour; the lawyer's idea: poor Tory jury, erring, mirror.",
    "She wanted roses in boxes, and pretty water for the thirsty, hungry, singing children.",
)


@pytest.mark.parametrize("voice", ["en-us", "en-gb"])
def test_every_symbol_espeak_speaks_for_english_lands_on_a_shape(voice):
    table = VisemeTable.factory()
    spoken = {p.phoneme for sentence in RICH_SENTENCES for p in synthesize(sentence, voice).phonemes}
    assert len(spoken) > 60  # the sentences really are rich
    unmapped = {phoneme: table.unmapped(phoneme) for phoneme in spoken if table.unmapped(phoneme)}
    assert unmapped == {}
    # Every phoneme that is not a pause or a glottal stop gives the mouth something to do.
    assert all(table.parts(p) for p in spoken if p.strip() and p != "ʔ")


def test_diphthongs_split_length_marks_hold_and_stress_marks_take_no_time():
    table = VisemeTable.factory()
    assert [(p.shape, p.weight) for p in table.parts("ˈaɪ")] == [("aaa", 1), ("iii", 1)]
    assert [(p.symbol, p.shape, p.weight) for p in table.parts("ˈɑːɹ")] == [("ɑ", "aaa", 2), ("ɹ", "uuu", 1)]
    assert [p.symbol for p in table.parts("həlˈoʊ")] == ["h", "ə", "l", "o", "ʊ"]
    assert [p.weight for p in table.parts("həlˈoʊ")] == [1, 1, 1, 1, 1]
    assert [p.shape for p in table.parts("m")] == ["closed"]
    assert [p.symbol for p in table.parts("ɑ̃")] == ["ɑ"]  # combining marks add nothing
    assert table.parts("ˈ") == [] and table.parts(", ") == []
    assert table.unmapped("中") == ["中"] and table.parts("中")[0][1:3] == tuple(table.unknown)


def test_the_cascade_applies_the_project_file_then_the_overrides(tmp_path, monkeypatch):
    project = tmp_path / "visemes.json"
    project.write_text(json.dumps({"settings": {"pause_close": 0.3}, "phonemes": {"ɑ": ["ooo", 0.5]}}), "utf-8")
    table, problems = load_visemes(project, overrides={"settings": {"attack": 0.02}, "phonemes": {"t": "closed"}})
    assert problems == []
    assert (table.pause_close, table.attack, table.release) == (0.3, 0.02, VisemeTable.factory().release)
    assert table.phonemes["ɑ"] == ("ooo", 0.5) and table.phonemes["t"] == ("closed", 1.0)
    monkeypatch.setenv("TALKINGHEAD_NB_VISEMES", str(project))
    assert visemes_file() == project and load_visemes()[0].pause_close == 0.3


def test_a_bad_entry_is_reported_by_name_and_spoils_nothing_else(tmp_path):
    project = tmp_path / "visemes.json"
    project.write_text(json.dumps({
        "settings": {"pause_close": -1, "attack": "fast", "release": 0.03, "speed": 2},
        "unknown": "keep",
        "phonemes": {"m": "bogus", "t": ["eee", 2], "k": ["ooo", 0.5], "  ": "aaa", "p": ["closed", 0.5]},
        "extra": {},
    }), "utf-8")
    table, problems = load_visemes(project)
    text = "\n".join(problems)
    assert len(problems) == 9 and all(p.startswith(str(project)) for p in problems)
    for name in ("pause_close", "attack", "'speed'", "unknown", "'m'", "'t'", "'  '", "'p'", "'extra'"):
        assert name in text
    factory = VisemeTable.factory()
    assert table.release == 0.03 and table.phonemes["k"] == ("ooo", 0.5)  # the good entries apply
    assert (table.pause_close, table.attack, table.unknown) == (factory.pause_close, factory.attack, factory.unknown)
    assert table.phonemes["m"] == factory.phonemes["m"] and table.phonemes["t"] == factory.phonemes["t"]


def test_unreadable_or_missing_files_fall_back_to_the_factory_table(tmp_path):
    broken = tmp_path / "visemes.json"
    broken.write_text("{not json", "utf-8")
    table, problems = load_visemes(broken)
    assert table == VisemeTable.factory() and "not readable JSON" in problems[0]
    table, problems = load_visemes(tmp_path / "absent.json")
    assert table == VisemeTable.factory() and "no such file" in problems[0]
    assert load_visemes(tmp_path / "absent.json", overrides=[1])[1][-1].startswith("overrides: expected a JSON object")


def test_the_table_is_data_a_user_can_tune():
    timeline = [{"phoneme": p, "start": i * 0.15, "end": (i + 1) * 0.15} for i, p in enumerate(["m", "ɑ", "m", "ɑ"])]
    closed = track_from_timeline(timeline).mouth(0.375)
    assert sum(closed.values()) == pytest.approx(0)
    table, problems = load_visemes(overrides={"phonemes": {"m": ["ooo", 0.5]}})
    assert problems == []
    tuned = track_from_timeline(timeline, table=table).mouth(0.375)
    assert tuned["mouth_ooo_index"] == pytest.approx(0.5)
    assert VisemeTable.factory().merged(table.to_json(), "round trip") == (table, [])
