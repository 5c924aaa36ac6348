"""A live character: its image, animator and frame pump, and the commands the live server and widgets send it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..character import Character
from ..effects import PRESETS, EffectChain, EffectError, parse_chain, to_display, to_rgba_array
from ..emotions import EmotionLibrary, EmotionTemplates, parse_templates
from ..engine import Poser
from ..engine.scheduler import RenderScheduler
from ..imaging import tensor_to_rgba
from ..messages import name_list, short_repr, summary
from ..speech import Speech, Track
from .animator import Animator
from .pump import FramePump, Viewer
from .settings import AnimatorSettings

if TYPE_CHECKING:
    from ..recording import Recording

MAX_SPEECH_DELAY = 10.0  # seconds a client may ask the mouth to wait for its audio


class CommandError(ValueError):
    """A command that cannot be carried out as given; nothing was changed. The message says what to send instead."""


class SessionNotFound(LookupError):
    """No live session has that id."""


class LiveSession:
    """One animated character. Commands are safe to call from any thread while viewers watch."""

    def __init__(self, session_id: str, poser: Poser, character: Character, *, library: EmotionLibrary,
                 settings: AnimatorSettings, emotion: str = "neutral", seed: int | None = None,
                 scheduler: RenderScheduler | None = None):
        self.id = session_id
        self.poser = poser
        self.scheduler = scheduler  # set: frames are rendered in batches with other sessions' (GPU servers)
        self.library = library
        self.default_settings = settings
        self._character = character
        self._character_lock = threading.Lock()
        self.animator = Animator(library.load(), settings, emotion=emotion, seed=seed, now=time.monotonic())
        self.effects = EffectChain()
        self._started = time.monotonic()
        self.pump = FramePump(self._render, self.animator, name=f"talkinghead-pump-{session_id}")

    def _render(self, pose):
        with self._character_lock:
            character = self._character
        effects = self.effects
        if self.scheduler is not None:
            frames = self.scheduler.render(character, pose)
        else:
            frames = self.poser.render_tensor(character, pose)
        if not effects:
            return tensor_to_rgba(frames)[0]
        return to_rgba_array(effects.apply(to_display(frames), time.monotonic() - self._started))[0]

    @property
    def character(self) -> Character:
        return self._character

    def viewer(self, fmt: str = "png") -> Viewer:
        return self.pump.viewer(fmt)

    # ---- commands -------------------------------------------------------------------------------------------------

    def load_character(self, character: Character) -> None:
        """Show ``character`` from the next frame on, and (re)start the animation."""
        with self._character_lock:
            self._character = character
        self.pump.resume()
        self.pump.invalidate()

    def unload(self) -> None:
        """Pause the animation (viewers keep the last frame); ``load_character`` or ``resume`` starts it again."""
        self.pump.pause()

    def resume(self) -> None:
        self.pump.resume()

    reload = resume  # the name of the established API's route: resume after unload, character kept

    def set_emotion(self, name: str) -> None:
        if name not in self.animator.templates.poses:
            raise CommandError(f"unknown emotion {short_repr(name)}; known: {name_list(self.animator.templates.names)}"
                               " (GET /api/classify/labels lists them all)")
        self.animator.set_emotion(name, time.monotonic())

    def speak(self, track: Track, delay: float = 0.0) -> float:
        """Let the mouth follow ``track`` from ``delay`` seconds from now (a client's audio latency) on; returns the
        track's length in seconds. Replaces any speech under way."""
        if not 0 <= delay <= MAX_SPEECH_DELAY:
            raise CommandError(f"delay must be between 0 and {MAX_SPEECH_DELAY} seconds, got {short_repr(delay)}")
        self.animator.speak(track, time.monotonic() + delay)
        return track.duration

    def stop_speaking(self) -> None:
        self.animator.stop_speaking()

    def start_talking(self) -> None:
        self.animator.start_talking()

    def stop_talking(self) -> None:
        self.animator.stop_talking()

    def load_emotion_templates(self, data: Any) -> EmotionTemplates:
        """``{}`` restores the project's templates; otherwise the given emotions replace theirs, all or none."""
        templates = self.library.load()
        if data != {}:
            poses, problems = parse_templates(data, "the request")
            if problems:
                raise CommandError("emotion templates not loaded: " + summary(problems))
            templates = EmotionTemplates({**templates.poses, **poses},
                                         {**templates.sources, **dict.fromkeys(poses, "request")})
        self.animator.set_templates(templates, time.monotonic())
        return templates

    def load_animator_settings(self, data: Any) -> AnimatorSettings:
        """``{}`` restores the defaults this session started with; otherwise the given settings apply, all or none."""
        settings, problems = self.default_settings.merged(data, "the request")
        if problems:
            raise CommandError("animator settings not loaded: " + summary(problems))
        self.animator.set_settings(settings)
        return settings

    def record(self, out: str | os.PathLike, seconds: float = 5.0, *, script: Any = None, fps: float | None = None,
               speech: Speech | None = None, background: tuple[int, int, int] = (255, 255, 255),
               max_seconds: float | None = None, progress: Callable | None = None,
               cancel: threading.Event | None = None) -> Recording:
        """Record this session (its character, templates, settings, effects) into ``out`` (.webp, .png, .gif, .webm,
        .mp4) with exact renders at ``fps`` (default: the animator's target_fps), not the live rate: ``seconds`` from
        its current emotion and talking state, or a ``script`` (a :class:`Script` or its JSON). The live feed goes on,
        slower while the engine also renders the recording. Bad input raises :class:`CommandError`; ``cancel`` set
        stops the recording at its next frame (``RecordingCancelled``, no file)."""
        from ..recording import MAX_SECONDS, Script, ScriptError, record
        templates = self.animator.templates
        try:
            if script is None:
                script = {"seconds": seconds, "emotion": self.animator.emotion, "talking": self.animator.talking}
            if not isinstance(script, Script):
                script = Script.from_json(script, templates, max_seconds=max_seconds or MAX_SECONDS)
            return record(self.poser, self.character, templates, out, script,
                          fps=fps or self.animator.settings.target_fps, speech=speech,
                          settings=self.animator.settings, effects=self.effects, background=background,
                          progress=progress, cancel=cancel)
        except ScriptError as e:
            raise CommandError(str(e)) from None

    def load_effects(self, data: Any) -> EffectChain:
        """Apply an effect chain to every frame from now on: its JSON (``[{"name": "bloom", "strength": 0.6}, …]``,
        ``[]`` for none) or a preset's name (``"crt"``). A bad chain changes nothing."""
        try:
            if isinstance(data, str) and data in PRESETS:
                chain = PRESETS[data]
            elif isinstance(data, str):
                raise EffectError(f"unknown preset {short_repr(data)}; presets: {name_list(PRESETS)}; or send the "
                                  "chain itself as a JSON list")
            else:
                chain = parse_chain(data)
        except EffectError as e:
            raise CommandError(f"effects not loaded: {e}") from None
        self.effects = chain
        return chain

    def stats(self) -> dict:
        return {"id": self.id, "character": self._character.name, "emotion": self.animator.emotion,
                "talking": self.animator.talking, "speaking": self.animator.speaking(time.monotonic()),
                **self.pump.stats(), **({"batching": self.scheduler.stats()} if self.scheduler else {})}

    def close(self) -> None:
        self.pump.close()
