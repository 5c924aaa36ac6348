"""The SillyTavern-Extras ``classify`` module, answered by our offline classifier (talkinghead_nb.classify).

- ``POST /api/classify`` ``{"text": "…"}`` → ``{"classification": [{"label": "joy", "score": 0.71}, …]}``, best
  first: SillyTavern shows ``classification[0].label``. Only emotions the session can show are answered (a session
  with none the classifier knows gets all of them).
- ``GET /api/classify/labels`` → ``{"labels": [...]}``: every emotion the session shows, and ``talkinghead``, the
  sprite name SillyTavern looks for (it keeps only the sprites whose name is in this list, so without it the
  character's talkinghead.png is never found and the live feed never starts).
- ``/api/sessions/{session_id}/classify`` and ``…/classify/labels``: the same for one session.

A body that is not JSON is a 400; a missing, non-string or empty ``text`` a 422; a text over ``MAX_TEXT_CHARS`` a 413.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ..classify import MAX_CHARS, Classifier, default_classifier

TALKINGHEAD = "talkinghead"
MAX_TEXT_CHARS = 100_000  # the classifier reads only the last MAX_CHARS of a text


class ClassifyRequest(BaseModel):
    text: str = Field(description=f"the message; over {MAX_CHARS:,} characters only its end is read",
                      max_length=MAX_TEXT_CHARS)


def add_classify_routes(app: FastAPI, labels_for: Callable[[str], Sequence[str]], *,
                        default_session: str = "default", classifier: Classifier | None = None) -> None:
    """Register the routes above. ``labels_for(session_id)``: the emotions that session can show (it raises for an
    unknown session, as ``LiveServer.session`` does); the classic routes act on ``default_session``."""
    model = classifier or default_classifier()

    def labels(session_id: str = default_session) -> dict[str, list[str]]:
        names = list(labels_for(session_id))
        return {"labels": names if TALKINGHEAD in names else [*names, TALKINGHEAD]}

    async def classify(request: Request, session_id: str = default_session) -> dict[str, Any]:
        text = _text_of(await request.body())
        shown = set(labels_for(session_id))
        known = [label for label in model.labels if label in shown] or None
        return {"classification": [{"label": label, "score": round(score, 6)}
                                   for label, score in model.classify(text, labels=known)]}

    body = {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": ClassifyRequest.model_json_schema()}}}}
    for prefix, name, which in (("/api", "", ""), ("/api/sessions/{session_id}", "session_", " (one session)")):
        app.get(f"{prefix}/classify/labels", name=f"{name}classify_labels",
                summary=f"The emotions the session shows, and 'talkinghead' (what SillyTavern lists){which}")(labels)
        app.post(f"{prefix}/classify", name=f"{name}classify", openapi_extra=body,
                 summary=f"The emotion of a text: {{\"text\": …}} → every label with a score, best first{which}")(
            classify)


def _text_of(body: bytes) -> str:
    """The ``text`` of a request body, or the HTTP error that says what is wrong with it."""
    try:
        data = json.loads(body)
    except ValueError as e:
        raise HTTPException(400, f"the body is not valid JSON ({e}); send {{\"text\": \"Hello!\"}} with "
                                 "'Content-Type: application/json'") from None
    if not isinstance(data, dict) or "text" not in data:
        raise HTTPException(422, "send a JSON object with the field 'text': {\"text\": \"Hello!\"}")
    text = data["text"]
    if not isinstance(text, str):
        raise HTTPException(422, f"text must be a string, not {_json_type(text)}")
    if not text.strip():
        raise HTTPException(422, "text is empty; send the message to classify")
    if len(text) > MAX_TEXT_CHARS:
        raise HTTPException(413, f"text is {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,} (and only the "
                                 f"last {MAX_CHARS:,} are read): send the end of the message")
    return text


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
