"""The offline emotion classifier (talkinghead_nb.classify) and its SillyTavern-Extras routes
(talkinghead_nb.live.classify_routes): the rules on sentences of our own, the output format, bad input, and the
routes on a small app. The ``test_server_*`` tests at the end need the routes wired into the live server."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.testclient import TestClient

from talkinghead_nb.classify import MAX_CHARS, Classifier, ClassifyError, Lexicon, classify
from talkinghead_nb.emotions import EMOTIONS
from talkinghead_nb.live.classify_routes import MAX_TEXT_CHARS, TALKINGHEAD, add_classify_routes

EMOTION_FILES = Path(__file__).resolve().parent.parent / "emotions"


def top(text: str) -> str:
    return classify(text)[0][0]


def score(text: str, label: str) -> float:
    return dict(classify(text))[label]


def test_labels_are_the_project_emotions():
    stems = sorted(p.stem for p in EMOTION_FILES.glob("*.json") if not p.name.startswith("_"))
    assert list(Classifier().labels) == stems == sorted(EMOTIONS)
    assert resources.files("talkinghead_nb.classify").joinpath("lexicon.json").is_file()


@pytest.mark.parametrize("text, label", [
    ("I'm so happy today!", "joy"),
    ("Thank you so much for the flowers!", "gratitude"),
    ("I'm sorry, it was my fault.", "remorse"),
    ("I love you, sweetheart.", "love"),
    ("Ew, that's gross.", "disgust"),
    ("Phew, that was close.", "relief"),
    ("I'm so proud of you!", "pride"),
    ("The train leaves at six from platform two.", "neutral"),
    ("*blushes*", "embarrassment"),
    ("*giggles*", "amusement"),
    ("*trembles*", "fear"),
    ("*glares at him*", "anger"),
    ("*gasps*", "surprise"),
    ("*pouts*", "annoyance"),
    ("*hugs you*", "love"),
])
def test_obvious_sentences(text, label):
    assert top(text) == label


def test_output_is_every_label_best_first_summing_to_one():
    result = classify("Oh wow, you baked a cake for me? Thank you!")
    labels = [label for label, _ in result]
    scores = [s for _, s in result]
    assert sorted(labels) == sorted(EMOTIONS)
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)
    assert math.isclose(sum(scores), 1, abs_tol=1e-9)


def test_negation_moves_the_feeling():
    assert top("I'm happy.") == "joy"
    assert top("I'm not happy.") in ("disappointment", "sadness")
    assert top("I agree with you.") == "approval"
    assert top("I don't agree with you.") == "disapproval"
    assert top("I'm not scared of you.") != "fear"
    assert top("No, I'm happy.") == "joy"  # the comma ends the negation


def test_intensifiers_caps_and_exclamations_raise_a_cue():
    plain = score("I'm happy.", "joy")
    assert score("I'm very happy.", "joy") > plain
    assert score("I'm HAPPY.", "joy") > plain
    assert score("I'm happy!!!", "joy") > plain
    assert score("I'm sooo happy.", "joy") > plain
    assert score("I'm a bit happy.", "joy") < plain


@pytest.mark.parametrize("text, label", [
    ("😂", "amusement"), ("😭", "sadness"), (":)", "joy"), (":(", "sadness"), ("<3", "love"), ("xD", "amusement"),
    ("see you there 👍", "approval"), ("the bill came to 40 €🤮", "disgust"),
])
def test_emoji_and_emoticons(text, label):
    assert top(text) == label


def test_questions():
    assert top("What are you reading?") == "curiosity"
    assert top("Huh? I'm confused.") == "confusion"
    assert top("You sold the house?!") == "surprise"


def test_actions_count_without_asterisks_and_more_with_them():
    """SillyTavern removes the asterisks before it asks."""
    assert top("blushes and looks away") == "embarrassment"
    assert score("*blushes*", "embarrassment") > score("blushes", "embarrassment")


def test_later_sentences_weigh_more():
    assert top("I was so angry this morning. But now I'm really happy.") == "joy"
    assert top("I was so happy this morning. But now I'm really angry.") == "anger"


def test_a_long_text_is_read_from_its_tail():
    assert top("I am furious. " + "la " * 10) == "anger"
    assert top("I am furious. " + "la " * (MAX_CHARS // 3)) == "neutral"
    assert top("la " * (MAX_CHARS // 3) + "I am furious.") == "anger"


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_neutral(text):
    result = classify(text)
    assert result[0][0] == "neutral"
    assert math.isclose(sum(s for _, s in result), 1)


def test_labels_keep_only_known_emotions():
    result = classify("I'm so happy!", labels=["sadness", "joy", "happy_custom"])
    assert [label for label, _ in result] == ["joy", "sadness"]
    assert math.isclose(sum(s for _, s in result), 1)


def test_mapping_renames_and_adds():
    text = "Yay, we're going to the beach tomorrow, I can't wait!"
    plain = dict(classify(text))
    renamed = dict(classify(text, mapping={"joy": "happy_custom"}))
    assert "joy" not in renamed and renamed["happy_custom"] == pytest.approx(plain["joy"])
    merged = dict(classify(text, mapping={"joy": "glad", "excitement": "glad"}))
    assert merged["glad"] == pytest.approx(plain["joy"] + plain["excitement"])
    assert next(iter(merged)) == "glad"


@pytest.mark.parametrize("call, words", [
    (lambda: classify(42), "string, not int"),
    (lambda: classify(None), "string, not NoneType"),
    (lambda: classify("hi", labels="joy"), "list of emotion names"),
    (lambda: classify("hi", labels=["happy_custom"]), "none of the labels"),
    (lambda: classify("hi", mapping={"happy": "glad"}), "'happy' is not a label"),
    (lambda: classify("hi", mapping={"joy": ""}), "must map to an emotion name"),
])
def test_bad_input_is_a_classify_error(call, words):
    with pytest.raises(ClassifyError, match=words):
        call()


def test_lexicon_refuses_a_term_it_cannot_match():
    data = json.loads(resources.files("talkinghead_nb.classify").joinpath("lexicon.json").read_text("utf-8"))
    data["cues"]["joy"]["ha*"] = 1
    with pytest.raises(ValueError, match="'ha\\*' of 'joy'"):
        Lexicon.from_json(data)
    data["cues"]["joy"].pop("ha*")
    data["negated"]["cheerfulness"] = {"joy": 1}
    with pytest.raises(ValueError, match="cheerfulness"):
        Lexicon.from_json(data)


# ---- the routes on a small app ----------------------------------------------------------------------------------

SESSIONS = {"default": [*EMOTIONS, "happy_custom"], "other": ["sadness", "joy"], "custom": ["happy_custom"]}


def labels_for(session_id: str) -> list[str]:
    if session_id not in SESSIONS:
        raise HTTPException(404, f"no session {session_id!r}")
    return SESSIONS[session_id]


@pytest.fixture(scope="module")
def client():
    app = FastAPI()
    add_classify_routes(app, labels_for)
    with TestClient(app) as c:
        yield c


def test_route_answers_in_the_extras_format(client):
    answer = client.post("/api/classify", json={"text": "*giggles* That's hilarious!"})
    assert answer.status_code == 200
    classification = answer.json()["classification"]
    assert classification[0]["label"] == "amusement"
    assert sorted(c["label"] for c in classification) == sorted(EMOTIONS)  # happy_custom is never guessed
    scores = [c["score"] for c in classification]
    assert scores == sorted(scores, reverse=True) and math.isclose(sum(scores), 1, abs_tol=1e-3)


def test_route_labels_name_the_session_emotions_and_talkinghead(client):
    labels = client.get("/api/classify/labels").json()["labels"]
    assert TALKINGHEAD in labels and "happy_custom" in labels and set(EMOTIONS) <= set(labels)
    assert client.get("/api/sessions/other/classify/labels").json() == {"labels": ["sadness", "joy", TALKINGHEAD]}


def test_session_route_answers_only_what_the_session_shows(client):
    answer = client.post("/api/sessions/other/classify", json={"text": "I'm so happy!"}).json()
    assert [c["label"] for c in answer["classification"]] == ["joy", "sadness"]
    everything = client.post("/api/sessions/custom/classify", json={"text": "I'm so happy!"}).json()
    assert len(everything["classification"]) == len(EMOTIONS)  # no emotion the classifier knows: all of them


@pytest.mark.parametrize("request_options, status, words", [
    ({"content": b"{\"text\": oops", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"json": ["hello"]}, 422, "field 'text'"),
    ({"json": {"message": "hello"}}, 422, "field 'text'"),
    ({"json": {"text": 5}}, 422, "not a number"),
    ({"json": {"text": None}}, 422, "not null"),
    ({"json": {"text": "  \n "}}, 422, "empty"),
    ({"json": {"text": "a" * (MAX_TEXT_CHARS + 1)}}, 413, f"{MAX_TEXT_CHARS:,}"),
])
def test_route_refuses_bad_bodies_naming_why(client, request_options, status, words):
    answer = client.post("/api/classify", **request_options)
    assert answer.status_code == status
    assert words in answer.json()["detail"]


def test_route_unknown_session_is_a_404(client):
    assert client.post("/api/sessions/nope/classify", json={"text": "hi"}).status_code == 404
    assert client.get("/api/sessions/nope/classify/labels").status_code == 404


def test_route_documents_its_body(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/classify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "text" in body["properties"]


# ---- the live server (these need `add_classify_routes` wired into routes.add_routes) -----------------------------

@pytest.fixture
def live(fake_server):
    with httpx.Client(base_url=fake_server.url, timeout=60) as c:
        yield c


def test_server_sillytavern_flow(live):
    """What SillyTavern 1.12.6 does: list modules and labels, classify the reply, set the emotion it got."""
    assert "classify" in live.get("/api/modules").json()["modules"]
    labels = live.get("/api/classify/labels").json()["labels"]
    assert TALKINGHEAD in labels and "joy" in labels
    answer = live.post("/api/classify", json={"text": "*giggles* That's hilarious!"})
    assert answer.status_code == 200
    label = answer.json()["classification"][0]["label"]
    assert label == "amusement"
    assert live.post("/api/talkinghead/set_emotion", json={"emotion_name": label}).status_code == 200
    live.post("/api/talkinghead/set_emotion", json={"emotion_name": "neutral"})


def test_server_session_routes(live):
    session = live.post("/api/sessions").json()["id"]
    try:
        loaded = live.post(f"/api/sessions/{session}/load_emotion_templates",
                           json={"happy_custom": {"mouth_aaa_index": 0.5}})
        assert loaded.status_code == 200
        labels = live.get(f"/api/sessions/{session}/classify/labels").json()["labels"]
        assert "happy_custom" in labels and TALKINGHEAD in labels
        answer = live.post(f"/api/sessions/{session}/classify", json={"text": "Thank you!"})
        assert answer.json()["classification"][0]["label"] == "gratitude"
    finally:
        live.delete(f"/api/sessions/{session}")
    assert live.post(f"/api/sessions/{session}/classify", json={"text": "hi"}).status_code == 404


def test_server_refuses_bad_bodies(live):
    answer = live.post("/api/classify", content=b"{oops", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]
    answer = live.post("/api/classify", json={"text": 5})
    assert answer.status_code == 422 and "not a number" in answer.json()["error"]
