"""The manual poser in a notebook: all 45 parameters as grouped sliders (any combination, left/right linkable),
emotion presets, character and emotion-JSON loading, saving images with a JSON sidecar and poses as emotions, and a
preview that follows the sliders without lag, showing any intermediate output of the engine.

Rendering runs in a background thread and is coalesced: while a frame renders, slider events only replace the
pending pose, so the renderer never works through stale poses and the UI stays responsive on a CPU.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import ipywidgets as W
import numpy as np

from .. import pose as P
from ..atomic import write_bytes, write_json
from ..character import Character, CharacterError, SizeError, load_character
from ..emotions import EmotionError, EmotionLibrary, EmotionTemplates, parse_templates
from ..encoding import encode_png
from ..engine import STAGE_OUTPUTS, Poser
from ..imaging import visualize
from .latest import LatestOnly, PreviewPanel

CUSTOM = "[custom]"
STEP = 0.01  # slider step; a value the browser sends back within half a step of ours is our value, not an edit
HOW_TO_LOAD = ("Load a character with <b>character PNG</b> (a 512×512 PNG with alpha; tick <i>scale to fit</i> for "
               "other sizes) or type a path or example name (lambda_01); add emotions with <b>emotions JSON</b>.")
MAX_NAME = 100  # characters of a name part in a saved file's name
SECTIONS: dict[str, tuple[P.Category, ...]] = {
    "eyebrows": (P.Category.EYEBROW,),
    "eyes": (P.Category.EYE,),
    "iris": (P.Category.IRIS_MORPH, P.Category.IRIS_ROTATION),
    "mouth": (P.Category.MOUTH,),
    "head/body": (P.Category.FACE_ROTATION, P.Category.BODY_ROTATION),
    "breathing": (P.Category.BREATHING,),
}


def safe_name(text: str) -> str:
    """``text`` as a file-name part: only ``A-Z a-z 0-9 _ . -`` (anything else becomes ``_``), no leading dot, at most
    ``MAX_NAME`` characters. Preset and character names come from uploads; they must not choose where files go."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).lstrip(".")[:MAX_NAME] or "unnamed"


def label(parameter: P.Parameter) -> str:
    """The slider's full label: ``eyebrow_troubled_left_index`` → ``eyebrow troubled left``."""
    side = f" {parameter.side}" if parameter.side else ""
    return parameter.group.replace("_", " ") + side


def tooltip(parameter: P.Parameter) -> str:
    return f"{parameter.key}: {parameter.low:g} … {parameter.high:g}"


class PosePanel(PreviewPanel):
    """``PosePanel(poser)`` and display it. Everything the buttons do is also a method, for scripts and tests."""

    def __init__(self, poser: Poser, character: Character | None = None, *, library: EmotionLibrary | None = None,
                 out_dir: str | os.PathLike = "out", preview_size: int = 512):
        self.poser = poser
        self.character = character or load_character("lambda_00")
        self.library = library or EmotionLibrary()
        self.templates: EmotionTemplates = self.library.load()
        self.out_dir = Path(out_dir)
        self._updating = False  # set while code (not the user) moves sliders
        self._pose = np.zeros(P.NUM_PARAMETERS, np.float32)  # the pose; the sliders show it (rounded to STEP)
        self._base = "neutral"  # the emotion the pose started from: what "reset" returns to once it is [custom]
        self.sliders: dict[str, W.FloatSlider] = {}
        self.links: dict[str, W.Checkbox] = {}
        self._build(preview_size)
        self.frames = 0
        self._renderer = LatestOnly(self._render, lambda e: self._say(f"render failed: {type(e).__name__}: {e}",
                                                                      error=True), name="talkinghead-pose-panel")
        self._show_source()
        self.load_preset("neutral")

    # ---- layout ---------------------------------------------------------------------------------------------------

    def _build(self, preview_size: int) -> None:
        style = {"description_width": "190px"}
        tabs = []
        for section, categories in SECTIONS.items():
            rows = []
            paired = False
            for parameter in (p for p in P.PARAMETERS if p.category in categories):
                # The readout is an editable number box: click it and type an exact value.
                slider = W.FloatSlider(value=0.0, min=parameter.low, max=parameter.high, step=STEP,
                                       description=label(parameter), tooltip=tooltip(parameter), style=style,
                                       continuous_update=True, readout_format=".2f", layout=W.Layout(width="495px"))
                slider.observe(lambda change, key=parameter.key: self._on_slider(key, change["new"]), "value")
                self.sliders[parameter.key] = slider
                rows.append(slider)
                paired = paired or parameter.partner is not None
            if paired:
                self.links[section] = W.Checkbox(value=True, description="link left/right", indent=False)
                rows.insert(0, self.links[section])
            tabs.append(W.VBox(rows))
        self.tabs = W.Tab(children=tabs, titles=list(SECTIONS), layout=W.Layout(width="510px"))
        self.preset = W.Dropdown(options=[*self.templates.names, CUSTOM], description="emotion",
                                 layout=W.Layout(width="205px"), style={"description_width": "55px"})
        self.preset.add_class("talkinghead-emotion")  # for scripts and tests driving the page
        self.preset.observe(self._on_preset, "value")
        self.reset_button = W.Button(description="reset to preset", icon="undo", layout=W.Layout(width="145px"))
        self.factory_button = W.Button(description="factory reset", icon="industry", layout=W.Layout(width="130px"),
                                       tooltip="restore this emotion's template to its factory setting (on disk)")
        self.reset_button.on_click(lambda _: self._guard(self.reset_to_preset))
        self.factory_button.on_click(lambda _: self._guard(self.factory_reset))
        self.stage = W.Dropdown(options=list(STAGE_OUTPUTS), value="image", description="show",
                                layout=W.Layout(width="260px"), style={"description_width": "40px"})
        self.stage.observe(lambda _: self._request(), "value")
        self.upload = W.FileUpload(accept=".png", multiple=False, description="character PNG",
                                   layout=W.Layout(width="180px"))
        self.upload.observe(self._on_upload, "value")
        self.fit = W.Checkbox(value=False, description="scale to fit", indent=False, layout=W.Layout(width="110px"),
                              tooltip="scale and pad an image of another size onto the 512×512 canvas")
        self.path = W.Text(placeholder="path or example name (lambda_01)", layout=W.Layout(width="240px"))
        self.load_button = W.Button(description="load", icon="folder-open", layout=W.Layout(width="80px"))
        self.load_button.on_click(lambda _: self._guard(self.load_character, self.path.value.strip()))
        self.emotions_upload = W.FileUpload(accept=".json", multiple=False, description="emotions JSON",
                                            layout=W.Layout(width="180px"))
        self.emotions_upload.observe(self._on_emotions_upload, "value")
        self.save_button = W.Button(description="save image + JSON", icon="save", layout=W.Layout(width="190px"))
        self.save_button.on_click(lambda _: self._guard(self.save_image))
        self.emotion_name = W.Text(placeholder="emotion name (default: the preset)", layout=W.Layout(width="240px"))
        self.save_emotion_button = W.Button(description="save as emotion", icon="save",
                                            layout=W.Layout(width="170px"))
        self.save_emotion_button.on_click(
            lambda _: self._guard(self.save_as_emotion, self.emotion_name.value.strip() or None))
        # Pictures keep their aspect and shrink with a narrow notebook instead of being clipped.
        self.source = W.Image(format="png", layout=W.Layout(width="256px", max_width="100%", height="auto",
                                                             border="1px solid #ccc"))
        self.preview = W.Image(format="png", layout=W.Layout(width=f"{preview_size}px", max_width="100%",
                                                              height="auto", border="1px solid #ccc"))
        self.timing = W.Label()
        self.status = W.HTML(layout=W.Layout(min_height="2.6em", width="100%"))  # reserved: no jump on a message
        source = W.VBox([W.HTML("<b>source</b>"), self.source, W.HTML(HOW_TO_LOAD, layout=W.Layout(max_width="256px"))],
                        layout=W.Layout(flex="0 1 270px", min_width="140px"))
        controls = W.VBox([
            W.HBox([self.preset, self.reset_button, self.factory_button]),
            self.tabs,
            W.HBox([self.upload, self.fit]),
            W.HBox([self.path, self.load_button]),
            W.HBox([self.emotions_upload, self.save_button]),
            W.HBox([self.emotion_name, self.save_emotion_button]),
        ], layout=W.Layout(width="520px", flex="0 0 auto"))
        output = W.VBox([W.HBox([W.HTML("<b>posed</b>"), self.stage]), self.preview, self.timing],
                        layout=W.Layout(flex="1 1 auto", min_width="200px", max_width=f"{preview_size + 20}px"))
        # The source and the posed output always side by side (the output shrinks, never wraps under the source);
        # the controls beside them where the window is wide enough, else below.
        pictures = W.HBox([source, output], layout=W.Layout(flex="1 1 500px", max_width=f"{preview_size + 300}px",
                                                              align_items="flex-start"))
        self.widget = W.VBox([W.HBox([pictures, controls], layout=W.Layout(flex_flow="row wrap",
                                                                           align_items="flex-start")),
                              self.status])

    # ---- the pose -------------------------------------------------------------------------------------------------

    @property
    def pose(self) -> np.ndarray:
        """The pose as set (a template's exact values, or the user's edits), not the sliders' rounded display."""
        return self._pose.copy()

    def set_pose(self, pose: P.PoseLike) -> None:
        self._pose = P.to_vector(pose, clip=True).copy()
        self._updating = True
        try:
            for key, value in zip(P.KEYS, self._pose, strict=True):
                self.sliders[key].value = float(value)
        finally:
            self._updating = False
        self._request()

    def load_preset(self, name: str) -> None:
        self.set_pose(self.templates.vector(name))
        self._base = name
        self.status.value = ""  # the last message was about the pose before
        self._updating = True
        try:
            self.preset.value = name
        finally:
            self._updating = False

    def reset_to_preset(self) -> None:
        """Back to the emotion the pose started from, undoing the edits since."""
        self.load_preset(self._base)
        self._say(f"reset to {self._base}")

    def factory_reset(self) -> None:
        """The emotion the pose started from, restored to its factory setting on disk, and shown."""
        name = self._base
        self.library.factory_reset(name)
        self.templates = self.library.load()
        self.load_preset(name)
        self._say(f"{name} restored to its factory setting")

    def _on_slider(self, key: str, value: float) -> None:
        index = P.BY_KEY[key].index
        if self._updating or abs(value - float(self._pose[index])) <= STEP / 2 + 1e-6:
            return  # our own update, or the browser sending back our value rounded to the slider's step
        self._pose[index] = value
        self.status.value = ""  # the last message was about the pose before this edit
        partner = P.BY_KEY[key].partner
        section = next(s for s, cats in SECTIONS.items() if P.BY_KEY[key].category in cats)
        if partner and section in self.links and self.links[section].value:
            self._pose[P.BY_KEY[partner].index] = value
            self._updating = True
            try:
                self.sliders[partner].value = value
            finally:
                self._updating = False
        if self.preset.value != CUSTOM:
            self._updating = True
            try:
                self.preset.value = CUSTOM
            finally:
                self._updating = False
        self._request()

    def _on_preset(self, change) -> None:
        if not self._updating and change["new"] != CUSTOM:
            self._guard(self.load_preset, change["new"])

    # ---- files ----------------------------------------------------------------------------------------------------

    def load_character(self, source: str | os.PathLike | bytes) -> None:
        """From a path, an example name (``lambda_01``) or PNG bytes (an upload); other sizes only with the
        *scale to fit* box ticked."""
        try:
            character = load_character(source, fit=self.fit.value,
                                       name=None if not isinstance(source, bytes) else "upload")
        except SizeError as e:
            raise SizeError(str(e).split(";")[0] + ": tick 'scale to fit' and load it again to scale it onto the "
                            "512×512 canvas") from None
        self.character = character
        self._show_source()
        self._request()
        self._say(f"loaded {self.character.name}")

    def _show_source(self) -> None:
        self.source.value = encode_png(self.character.rgba)

    def load_emotions_json(self, data: bytes | str | os.PathLike) -> list[str]:
        """Merge ``{emotion: pose}`` from JSON bytes or a file into the presets (nothing on disk changes)."""
        text = data.decode("utf-8") if isinstance(data, bytes) else Path(data).read_text(encoding="utf-8")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            raise EmotionError(f"the emotions file is not valid JSON: {e}") from None
        poses, problems = parse_templates(parsed, "the emotions file")
        if problems:
            raise EmotionError("; ".join(problems))
        self.templates = EmotionTemplates({**self.templates.poses, **poses}, self.templates.sources)
        self._updating = True
        try:
            self.preset.options = [*self.templates.names, CUSTOM]
        finally:
            self._updating = False
        self._say(f"loaded {len(poses)} emotion(s): {', '.join(poses)}")
        return list(poses)

    def save_image(self, path: str | os.PathLike | None = None) -> tuple[Path, Path]:
        """The current picture (final image) as a PNG, and its pose as a JSON sidecar beside it; by default
        ``<out_dir>/<character>-<preset>.png``, with both names made safe (:func:`safe_name`)."""
        name = self.preset.value if self.preset.value != CUSTOM else f"{self._base}-custom"
        path = Path(path) if path else self._output_path(f"{safe_name(self.character.name)}-{safe_name(name)}.png")
        rgba = self.poser.render_array(self.character, self.pose)[0]
        png = write_bytes(path, encode_png(rgba, level=3))
        sidecar = write_json(path.with_suffix(".json"), {name: P.to_dict(self.pose)})
        self._say(f"saved {png} and {sidecar.name}")
        return png, sidecar

    def _output_path(self, file_name: str) -> Path:
        path = self.out_dir / file_name
        if not path.resolve().is_relative_to(self.out_dir.resolve()):
            raise ValueError(f"{file_name!r} would be written outside {self.out_dir}: rename the preset or character")
        return path

    def save_as_emotion(self, name: str | None = None) -> Path:
        """Save the pose into ``emotions/<name>.json`` (atomic; by default the emotion it started from); the preset
        list picks it up."""
        name = name or self._base
        path = self.library.save(name, self.pose)
        pose = self.pose
        self.templates = self.library.load()
        self._updating = True
        try:
            self.preset.options = [*self.templates.names, CUSTOM]
            self.preset.value = name
        finally:
            self._updating = False
        self.set_pose(pose)
        self._base = name  # what reset and factory reset now act on
        self._say(f"saved {name} to {path}")
        return path

    def _on_upload(self, change) -> None:
        if change["new"]:
            self._guard(self.load_character, bytes(change["new"][0]["content"]))

    def _on_emotions_upload(self, change) -> None:
        if change["new"]:
            self._guard(self.load_emotions_json, bytes(change["new"][0]["content"]))

    # ---- rendering ------------------------------------------------------------------------------------------------

    def _request(self) -> None:
        self._renderer.request((self.pose, self.stage.value))

    def wait_rendered(self, timeout: float = 60.0) -> bool:
        """Block until the preview shows the latest requested pose (for scripts and tests)."""
        return self._renderer.wait(timeout)

    def _render(self, request: tuple[np.ndarray, str]) -> None:
        pose, stage = request
        start = time.perf_counter()
        if stage == "image":
            rgba = self.poser.render_array(self.character, pose)[0]
        else:
            rgba = visualize(self.poser.render_stages(self.character, pose)[stage])[0]
        seconds = time.perf_counter() - start
        self.preview.value = encode_png(rgba)
        self.frames += 1
        self.timing.value = f"{stage}: {seconds * 1e3:.0f} ms ({1 / seconds:.1f} FPS)"

    # ---- plumbing -------------------------------------------------------------------------------------------------

    def _guard(self, action, *args) -> None:
        """Run a button's action; show a failure in the panel instead of raising into the widget machinery."""
        try:
            action(*args)
        except (CharacterError, EmotionError, P.PoseError, OSError, ValueError) as e:
            self._say(str(e), error=True)
