from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pytest

from talkinghead_nb import atomic
from talkinghead_nb import pose as P
from talkinghead_nb.emotions import EMOTIONS, EmotionError, EmotionLibrary
from talkinghead_nb.paths import emotions_dir


@pytest.fixture
def library(tmp_path) -> EmotionLibrary:
    folder = tmp_path / "emotions"
    shutil.copytree(emotions_dir(), folder)
    return EmotionLibrary(folder)


def test_shipped_templates_are_complete_and_distinct():
    library = EmotionLibrary()
    defaults = library.factory_defaults()
    assert set(defaults) == set(EMOTIONS) | {"zero"} and len(EMOTIONS) == 28
    assert not defaults["zero"].any()
    vectors = np.stack([defaults[n] for n in EMOTIONS])
    assert len({v.tobytes() for v in vectors}) == 28
    for name in EMOTIONS:  # one editable file per emotion, in the established format, all 45 keys
        data = json.loads(library.path_for(name).read_text())
        assert list(data) == [name] and list(data[name]) == list(P.KEYS)
    templates = library.load()
    assert not templates.problems and set(templates.names) >= set(EMOTIONS)
    assert templates.emotions == [n for n in templates.names if n != "zero"] and len(templates.emotions) == 28


def test_fallback_character_then_emotion_file_then_defaults(library, tmp_path):
    factory = library.factory_defaults()
    library.save("joy", {"mouth_aaa_index": 0.1})
    character_dir = tmp_path / "alice"
    character_dir.mkdir()
    (character_dir / "_emotions.json").write_text(json.dumps({"anger": {"eyebrow_angry_left_index": 0.2}}))
    templates = library.load(character_dir)
    assert templates.pose("anger")["eyebrow_angry_left_index"] == 0.2
    assert templates.sources["anger"] == character_dir / "_emotions.json"
    assert templates.to_json()["anger"] == templates.pose("anger")  # the established file format, all 45 keys
    assert templates.pose("joy")["mouth_aaa_index"] == pytest.approx(0.1)
    assert templates.sources["joy"] == library.path_for("joy")
    library.path_for("fear").write_text("")  # the established "reset me" convention
    assert np.array_equal(library.load().vector("fear"), factory["fear"])


def test_malformed_files_are_named_and_other_emotions_stay_usable(library, tmp_path):
    library.path_for("joy").write_text('{"joy": {"mouth_aaa_index": 0.5,,}}')
    library.path_for("anger").write_text('{"anger": {"mouth_aaa_index": "loud"}}')
    library.path_for("fear").write_text('{"fear": {"eye_surprised_index": 1.0}}')
    with pytest.warns(UserWarning):
        templates = library.load()
    problems = "\n".join(templates.problems)
    assert "joy.json: malformed JSON at line 1" in problems
    assert "anger.json: emotion 'anger': pose parameter 'mouth_aaa_index' is 'loud'" in problems
    assert "fear.json: emotion 'fear': unknown pose parameter(s): 'eye_surprised_index'" in problems
    factory = library.factory_defaults()
    for name in ("joy", "anger", "fear"):
        assert np.array_equal(templates.vector(name), factory[name])
    assert templates.sources["sadness"] == library.path_for("sadness")
    with pytest.raises(EmotionError, match="anger.json"):  # files are read in name order
        library.load(strict=True)


def test_unknown_emotion_lists_the_known_ones(library):
    with pytest.raises(EmotionError, match="unknown emotion 'smug'.*admiration"):
        library.load().vector("smug")


def test_custom_emotions_are_loaded(library):
    library.save("smug", {"mouth_smirk": 0.8})
    assert library.load().pose("smug")["mouth_smirk"] == pytest.approx(0.8)


def test_save_validates_and_rejects_unsafe_names(library):
    with pytest.raises(P.PoseError):
        library.save("joy", {"mouth_aaa_index": float("nan")})
    for name in ("../evil", "_defaults", ""):
        with pytest.raises(EmotionError):
            library.save(name, {})


def test_save_is_atomic(library, monkeypatch):
    path = library.path_for("joy")
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")
    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError):
        library.save("joy", {"mouth_aaa_index": 0.3})
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_factory_reset_one_and_all(library):
    factory = library.factory_defaults()
    library.save("joy", {})
    library.save("grief", {})
    written = library.factory_reset("joy")
    assert written == [library.path_for("joy")]
    templates = library.load()
    assert np.array_equal(templates.vector("joy"), factory["joy"])
    assert not templates.vector("grief").any()
    assert len(library.factory_reset()) == 28
    assert np.array_equal(library.load().vector("grief"), factory["grief"])
    with pytest.raises(EmotionError, match="no factory setting"):
        library.factory_reset("smug")


def test_broken_defaults_file_is_an_error(library):
    library.defaults_path.write_text("{")
    with pytest.raises(EmotionError, match="_defaults.json.*git checkout"):
        library.load()
    library.defaults_path.unlink()
    with pytest.raises(EmotionError, match="_defaults.json is missing"):
        library.load()


def test_emotions_render_to_different_images(poser, character):
    from talkinghead_nb.sprites import render_emotions
    images = render_emotions(poser, character, EmotionLibrary().load(), ["neutral", "joy", "surprise"])
    def face_difference(a: str, b: str) -> float:  # mean |Δ| over the face region
        return float(np.abs(images[a][32:224, 160:352].astype(int) - images[b][32:224, 160:352]).mean())
    assert face_difference("neutral", "joy") > 2 and face_difference("joy", "surprise") > 2


def test_the_factory_emotions_are_distinct_from_each_other():
    """Each emotion must read as itself on a thumbnail: no two templates may be near copies (pose distance)."""
    defaults = EmotionLibrary().factory_defaults()
    vectors = {name: defaults[name] for name in EMOTIONS}
    closest = min((float(np.linalg.norm(vectors[a] - vectors[b])), a, b)
                  for a, b in itertools.combinations(EMOTIONS, 2))
    assert closest[0] >= 0.7, f"{closest[1]} and {closest[2]} are too alike ({closest[0]:.2f})"
