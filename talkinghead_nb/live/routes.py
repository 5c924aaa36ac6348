"""The live server's endpoints: the SillyTavern-Extras talkinghead API (existing clients work unchanged), the
``classify`` module its clients ask for (text → emotion), sessions for several characters, and stats.

Each classic route ``/api/talkinghead/<verb>`` acts on the session ``default`` and has a twin
``/api/sessions/{session_id}/<verb>`` for any session.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException

from ..effects import PRESETS
from ..effects import documentation as effects_documentation
from ..encoding import check_format
from .classify_routes import add_classify_routes
from .feed import feed_parts
from .http import is_multipart, while_connected
from .session import MAX_SPEECH_DELAY
from .settings import AnimatorSettings

if TYPE_CHECKING:
    from .server import LiveServer

DEFAULT_SESSION = "default"
MAX_FEED_FPS = 60


STATIC = Path(__file__).resolve().parent / "static"


class SetEmotion(BaseModel):
    emotion_name: str


class Speak(BaseModel):
    """Text to say (eSpeak NG: the answer is the WAV to play), or a TTS engine's timeline (phonemes or words with
    start and end times, the answer is JSON)."""
    text: str | None = Field(None, description="what to say; the answer is audio/wav")
    timeline: Any = Field(None, description="phonemes or words with start/end seconds, as TTS engines return them")
    voice: str = Field("en-us", max_length=64, description="eSpeak voice: a language (en-us, de, fr…) or name")
    rate: int = Field(175, ge=80, le=450, description="words per minute")
    delay: float = Field(0.0, ge=0, le=MAX_SPEECH_DELAY, description="seconds before the mouth starts (the "
                         "client's audio latency)")


def add_routes(app: FastAPI, server: LiveServer) -> None:  # noqa: C901 — one flat list of endpoints reads best
    def twin(method: str, verb: str, summary: str, **options: Any):
        """Register a function as ``/api/talkinghead/<verb>`` and ``/api/sessions/{session_id}/<verb>``."""
        def register(function):
            add = getattr(app, method)
            add(f"/api/talkinghead/{verb}", summary=summary, name=verb, **options)(function)
            add(f"/api/sessions/{{session_id}}/{verb}", summary=f"{summary} (one session)", name=f"session_{verb}",
                **options)(function)
            return function
        return register

    @app.get("/api/modules", summary="The modules this server offers (SillyTavern-Extras)")
    def modules() -> dict[str, list[str]]:
        return {"modules": ["talkinghead", "classify"]}

    add_classify_routes(app, lambda session_id: server.session(session_id).animator.templates.names,
                        default_session=DEFAULT_SESSION)

    @twin("post", "load", "Load the character image (multipart field 'file') and start")
    async def load(file: Annotated[UploadFile, File(description="the character: 512×512 PNG with alpha")],
                   fit: Annotated[bool, Query(description="scale and pad an image of another size onto the "
                                                          "512×512 canvas")] = False,
                   session_id: str = DEFAULT_SESSION):
        session = server.session(session_id)
        character = await server.decode_upload(await file.read(), fit, file.filename)
        session.load_character(character)
        return {"status": "ok", "character": character.name}

    def session_command(verb: str):
        """A parameterless command: call the session's method of that name."""
        def command(session_id: str = DEFAULT_SESSION):
            getattr(server.session(session_id), verb)()
            return {"status": "ok"}
        return command

    for verb, summary in (("unload", "Pause the animation (the feed keeps the last frame)"),
                          ("reload", "Resume the animation after unload, with the character already loaded"),
                          ("start_talking", "Start the talking animation"),
                          ("stop_talking", "Stop the talking animation")):
        twin("get", verb, summary)(session_command(verb))

    @twin("post", "speak", "Lip sync: JSON {text | timeline, voice, rate, delay}, or multipart 'file' (WAV, FLAC, "
                           "OGG) with ?delay=",
          responses={200: {"content": {"audio/wav": {}}, "description": "the WAV for text; JSON otherwise"}},
          openapi_extra={"requestBody": {"content": {
              "application/json": {"schema": Speak.model_json_schema()},
              "multipart/form-data": {"schema": {"type": "object", "properties": {
                  "file": {"type": "string", "format": "binary"}}}}}}})
    async def speak(request: Request, delay: Annotated[float, Query(ge=0, le=MAX_SPEECH_DELAY)] = 0.0,
                    session_id: str = DEFAULT_SESSION):
        session = server.session(session_id)
        if is_multipart(request.headers.get("content-type")):  # as BodyLimit decides: the upload limit
            async with request.form(max_files=1, max_fields=4) as form:
                upload = form.get("file")
                if not isinstance(upload, StarletteUpload):
                    raise HTTPException(422, "file: send the audio as the multipart field 'file'")
                data = await upload.read()
            track = await server.decode_speech_audio(data)
            return {"status": "ok", "duration": round(session.speak(track, delay), 3)}
        try:
            body = Speak.model_validate(await request.json())
        except ValueError as e:  # not JSON, or not the fields above
            raise HTTPException(422 if isinstance(e, ValidationError) else 400, _first_problem(e)) from None
        if (body.text is None) == (body.timeline is None):
            raise HTTPException(422, "send either 'text' (to be spoken) or 'timeline' (a TTS engine's timing)")
        if body.timeline is not None:
            track = await server.speech_from_timeline(body.timeline, body.voice)
            return {"status": "ok", "duration": round(session.speak(track, body.delay or delay), 3)}
        speech = await server.speech_from_text(body.text, body.voice, body.rate)
        duration = session.speak(speech.track, body.delay or delay)
        return Response(speech.wav(), media_type="audio/wav", headers={"X-Speech-Duration": f"{duration:.3f}"})

    twin("get", "stop_speaking", "Stop lip sync at once (the mouth returns to the emotion)")(
        session_command("stop_speaking"))

    @app.get("/speak", summary="A page that speaks typed text and shows the feed in sync", include_in_schema=False)
    def speak_page():
        return FileResponse(STATIC / "speak.html", media_type="text/html")

    @app.get("/", summary="The viewer page: the feed, emotion buttons, talking, pause, stats; ?controls=0 for OBS",
             include_in_schema=False)
    @app.get("/sessions/{session_id}", include_in_schema=False)
    @app.get("/sessions/{session_id}/", include_in_schema=False)  # no redirect: its URL would come from Host
    def viewer_page(session_id: str = DEFAULT_SESSION):
        server.session(session_id)  # an unknown session: 404 here, not a page that cannot load
        return FileResponse(STATIC / "viewer.html", media_type="text/html")

    @twin("get", "emotions", "The emotions this session can show and the current one")
    def emotions(session_id: str = DEFAULT_SESSION):
        animator = server.session(session_id).animator
        return {"emotions": animator.templates.names, "current": animator.emotion}

    @twin("post", "set_emotion", "Switch to an emotion: {\"emotion_name\": \"joy\"}")
    def set_emotion(body: SetEmotion, session_id: str = DEFAULT_SESSION):
        server.session(session_id).set_emotion(body.emotion_name)
        return {"status": "ok", "emotion": body.emotion_name}

    @twin("post", "load_emotion_templates",
          "Replace emotion templates ({emotion: {pose key: value}}); {} restores the project's")
    def load_emotion_templates(data: Annotated[Any, Body()], session_id: str = DEFAULT_SESSION):
        templates = server.session(session_id).load_emotion_templates(data)
        return {"status": "ok", "emotions": templates.names}

    @twin("post", "load_animator_settings", "Change animator settings ({name: value}); {} restores the server's")
    def load_animator_settings(data: Annotated[Any, Body()], session_id: str = DEFAULT_SESSION):
        settings = server.session(session_id).load_animator_settings(data)
        return {"status": "ok", "settings": settings.to_json()}

    @twin("get", "animator_settings", "The settings in force, with each one's default, range and meaning")
    def animator_settings(session_id: str = DEFAULT_SESSION):
        current = server.session(session_id).animator.settings.to_json()
        return {name: {"value": current[name], **doc} for name, doc in AnimatorSettings.documentation().items()}

    @twin("get", "result_feed", "The live feed: multipart/x-mixed-replace, one image a part",
          response_class=StreamingResponse)
    def result_feed(format: Annotated[str, Query(description="png (default), qoi or webp")] = "png",
                    fps: Annotated[float | None, Query(ge=1, le=MAX_FEED_FPS, description="parts per second for "
                                                       "this viewer (default: the animator's target_fps)")] = None,
                    session_id: str = DEFAULT_SESSION):
        session = server.session(session_id)
        try:
            fmt = check_format(format)
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        viewer = server.open_viewer(session, fmt)
        parts = feed_parts(viewer, fmt, lambda: fps or session.animator.settings.target_fps)
        weakref.finalize(parts, viewer.close)  # a client gone before the first part: the generator never runs
        return StreamingResponse(parts, media_type="multipart/x-mixed-replace; boundary=frame")

    @twin("post", "load_effects", "Effects on every frame: a chain [{\"name\": \"bloom\", \"strength\": 0.6}, …], "
          "a preset's name (\"crt\"), or [] for none; GET …/effects lists the effects and their parameters")
    def load_effects(data: Annotated[Any, Body()], session_id: str = DEFAULT_SESSION):
        return {"status": "ok", "effects": server.session(session_id).load_effects(data).to_json()}

    @twin("get", "effects", "The session's effect chain, the presets, and every effect's parameters with their ranges")
    def effects(session_id: str = DEFAULT_SESSION):
        return {"effects": server.session(session_id).effects.to_json(),
                "presets": {name: chain.to_json() for name, chain in PRESETS.items()},
                "documentation": effects_documentation()}

    @twin("post", "record", "Record this session with exact renders at a fixed rate and answer with the file: "
          "{\"seconds\": 3, \"format\": \"webp|png|gif|webm|mp4\", \"fps\": 25, \"emotion\": …, "
          "\"talking\": …, \"steps\": [{\"at\": 1, \"emotion\": \"joy\"}]} (at most 30 s; one at a time; it stops "
          "when the client disconnects)")
    async def record_clip(request: Request, data: Annotated[Any, Body()], session_id: str = DEFAULT_SESSION):
        session = server.session(session_id)
        clip = await while_connected(request, lambda cancel: server.record_clip(session, data, cancel))
        if clip is None:  # the client left: nobody reads this answer
            return Response(status_code=499)
        return Response(clip[0], media_type=clip[1])

    @twin("get", "stats", "Render and encode times, frames rendered and sent, output FPS, render-thread health")
    def stats(session_id: str = DEFAULT_SESSION):
        return server.session(session_id).stats()

    @app.get("/api/sessions", summary="All sessions and their stats")
    def list_sessions():
        return {"sessions": [s.stats() for s in server.all_sessions()]}

    @app.post("/api/sessions", summary="Create a session, optionally with a character (multipart 'file')")
    async def create_session(file: Annotated[UploadFile | None, File()] = None, fit: bool = False):
        character = None
        if file is not None:
            character = await server.decode_upload(await file.read(), fit, file.filename)
        session = server.new_session(character)
        return {"id": session.id, "feed": f"/api/sessions/{session.id}/result_feed"}

    @app.delete("/api/sessions/{session_id}", summary="Close a session and end its feeds")
    def delete_session(session_id: str):
        if session_id == DEFAULT_SESSION:
            raise HTTPException(400, "the default session stays; load another character into it instead")
        server.close_session(session_id)
        return {"status": "ok"}


def _first_problem(error: ValueError) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        return f"{where}: {first.get('msg')}"
    return f"the body is not valid JSON ({error}); send {{\"text\": \"Hello!\"}} with 'Content-Type: application/json'"
