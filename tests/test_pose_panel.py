"""The manual-poser panel without a kernel: move sliders, pick presets, press buttons, check the pose and files."""

from __future__ import annotations

import datetime
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from talkinghead_nb import pose as P
from talkinghead_nb.character import example_path, load_character
from talkinghead_nb.emotions import EmotionLibrary
from talkinghead_nb.paths import emotions_dir
from talkinghead_nb.widgets import PosePanel
from talkinghead_nb.widgets.pose_panel import CUSTOM, MAX_NAME, SECTIONS, safe_name


@pytest.fixture
def panel(poser, character, tmp_path):
    library_dir = tmp_path / "emotions"
    shutil.copytree(emotions_dir(), library_dir)
    panel = PosePanel(poser, character, library=EmotionLibrary(library_dir), out_dir=tmp_path / "out")
    assert panel.wait_rendered()
    yield panel
    panel.close()


def upload(name: str, content: bytes) -> tuple[dict, ...]:
    """What FileUpload's value holds after the browser sent a file."""
    return ({"name": name, "type": "", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


def preview(panel) -> np.ndarray:
    assert panel.wait_rendered()
    return np.asarray(Image.open(io.BytesIO(panel.preview.value)))


def test_every_parameter_has_a_slider_in_a_section(panel):
    assert set(panel.sliders) == set(P.KEYS)
    categories = {c for cats in SECTIONS.values() for c in cats}
    assert {p.category for p in P.PARAMETERS} <= categories
    assert panel.sliders["head_x_index"].min == -1.0 and panel.sliders["breathing_index"].max == 1.0


def test_sliders_combine_freely_link_pairs_and_mark_the_preset_custom(panel):
    before = preview(panel)
    panel.sliders["eyebrow_angry_left_index"].value = 0.8      # linked: the right one follows
    panel.sliders["eye_wink_right_index"].value = 1.0          # a second morph of another category…
    panel.links["eyes"].value = False
    panel.sliders["eye_happy_wink_left_index"].value = 0.5     # …and a third, unlinked
    panel.sliders["mouth_aaa_index"].value = 0.7
    pose = panel.pose
    assert pose[P.BY_KEY["eyebrow_angry_right_index"].index] == pytest.approx(0.8)
    assert pose[P.BY_KEY["eye_happy_wink_right_index"].index] == pytest.approx(
        panel.templates.vector("neutral")[P.BY_KEY["eye_happy_wink_right_index"].index])
    assert pose[P.BY_KEY["mouth_aaa_index"].index] == pytest.approx(0.7)
    assert panel.preset.value == CUSTOM
    after = preview(panel)
    assert np.abs(after.astype(int) - before.astype(int)).max() > 60


def test_slider_events_are_coalesced(panel):
    rendered = panel.frames
    for value in np.linspace(0, 1, 25):
        panel.sliders["head_y_index"].value = float(value)
    assert panel.wait_rendered()
    assert panel.frames - rendered <= 3  # 25 events, at most: the one in flight and the newest
    assert panel.pose[P.BY_KEY["head_y_index"].index] == 1.0


def test_presets_reset_and_factory_reset(panel):
    panel.preset.value = "joy"
    assert np.allclose(panel.pose, panel.templates.vector("joy"))
    panel.sliders["mouth_aaa_index"].value = 0.0
    assert panel.preset.value == CUSTOM
    panel.reset_button.click()  # back to the emotion the edits started from
    assert panel.preset.value == "joy" and np.allclose(panel.pose, panel.templates.vector("joy"))
    assert "reset to joy" in panel.status.value
    panel.sliders["eyebrow_lowered_left_index"].value = 0.5
    panel.preset.value = "joy"  # re-selecting the preset reloads it
    assert np.allclose(panel.pose, panel.templates.vector("joy"))

    panel.sliders["head_x_index"].value = 0.5
    png, _ = panel.save_image()                  # named after the emotion it started from
    assert png.name == f"{panel.character.name}-joy-custom.png"
    panel.save_emotion_button.click()            # no name given: the edited pose becomes joy, on disk
    assert panel.library.load().vector("joy")[P.BY_KEY["head_x_index"].index] == pytest.approx(0.5)
    panel.factory_button.click()                 # and back to the factory setting
    factory = panel.library.factory_defaults()["joy"]
    assert np.allclose(panel.library.load().vector("joy"), factory)
    assert np.allclose(panel.pose, factory)

    panel.sliders["head_x_index"].value = -0.5
    panel.save_as_emotion("mine")                # a new emotion is now what reset acts on
    panel.sliders["head_x_index"].value = 0.5
    panel.reset_button.click()
    assert panel.preset.value == "mine" and panel.pose[P.BY_KEY["head_x_index"].index] == pytest.approx(-0.5)
    panel.factory_button.click()                 # "mine" has no factory setting: refused, and joy stays as it is
    assert "mine&#x27; has no factory setting" in panel.status.value
    assert np.allclose(panel.library.load().vector("joy"), factory)


def test_stage_selector_shows_intermediate_outputs(panel):
    final = preview(panel)
    panel.stage.value = "eyebrow_layer"
    stage = preview(panel)
    assert stage.shape == (128, 128, 4) and final.shape == (512, 512, 4)
    assert "eyebrow_layer" in panel.timing.value and "ms" in panel.timing.value


def test_load_character_and_emotions_and_save(panel, tmp_path):
    panel.path.value = "crypko_01"
    panel.load_button.click()
    assert panel.character.name == "crypko_01"
    panel.upload.value = upload("x.png", Path(example_path("crypko_02")).read_bytes())
    assert panel.character.name == "upload"
    panel.emotions_upload.value = upload("e.json", b'{"smug": {"mouth_smirk": 1.0}}')
    assert "smug" in panel.preset.options
    panel.preset.value = "smug"
    png, sidecar = panel.save_image()
    assert Image.open(png).size == (512, 512) and Image.open(png).mode == "RGBA"
    assert json.loads(sidecar.read_text())["smug"]["mouth_smirk"] == 1.0


def test_bad_input_shows_a_message_and_changes_nothing(panel):
    name = panel.character.name
    panel.path.value = "/no/such/file.png"
    panel.load_button.click()
    assert "does not exist" in panel.status.value and panel.character.name == name
    panel.emotions_upload.value = upload("e.json", b"{oops")
    assert "not valid JSON" in panel.status.value
    panel.emotion_name.value = "../outside"
    panel.save_emotion_button.click()
    assert "../outside" in panel.status.value and not (panel.library.directory.parent / "outside.json").exists()


def test_safe_name_keeps_names_inside_a_folder():
    assert safe_name("joy") == "joy" and safe_name("crypko_01.v2-b") == "crypko_01.v2-b"
    assert safe_name("../../evil") == "_.._evil"
    assert safe_name("..\\x") == "_x"
    assert safe_name("x" * 500) == "x" * MAX_NAME
    assert safe_name("...") == safe_name("") == "unnamed"
    assert safe_name("笑顔 😀") == "____"


@pytest.mark.parametrize("hostile", ["../../evil", "..\\x", "x" * 500, "/etc/passwd", ".hidden"])
def test_saved_files_stay_in_the_output_folder_whatever_the_names(panel, tmp_path, hostile):
    panel.character = load_character(Path(example_path("crypko_01")).read_bytes(), name=hostile)
    png, sidecar = panel.save_image()
    out = (tmp_path / "out").resolve()
    assert png.resolve().parent == out and sidecar.resolve().parent == out
    for path in (png, sidecar):
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", path.name) and not path.name.startswith(".")
        assert len(path.name) <= 2 * MAX_NAME + len("-.json")
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and "emotions" not in
                     p.relative_to(tmp_path).parts)
    assert written == sorted(f"out/{p.name}" for p in (png, sidecar))


def test_a_character_file_with_a_hostile_name_saves_inside_the_output_folder(panel, tmp_path):
    hostile = tmp_path / "..\\..\\x.png"  # a legal file name on Linux, a path on Windows
    hostile.write_bytes(Path(example_path("crypko_01")).read_bytes())
    panel.load_character(hostile)
    assert panel.character.name == "..\\..\\x"
    png, _ = panel.save_image()
    assert png.parent == tmp_path / "out" and png.name == "_.._x-neutral.png"


@pytest.mark.parametrize("name", ["joy", "anger", "surprise", "admiration"])
def test_the_browser_sending_back_rounded_values_keeps_the_preset(panel, name):
    """JupyterLab's sliders round 0.699999988 to their 0.01 step and send it back: that is no edit."""
    panel.preset.value = name
    template = panel.templates.vector(name)
    for slider in panel.sliders.values():
        slider.value = round(slider.value, 2)  # what the browser echoes
    assert panel.preset.value == name
    assert np.array_equal(panel.pose, template)  # the exact template, not its rounded display
    panel.sliders["mouth_aaa_index"].value = round(float(template[P.BY_KEY["mouth_aaa_index"].index]) + 0.2, 2) % 1
    assert panel.preset.value == "[custom]"
    panel.preset.value = name
    panel.reset_button.click()
    assert panel.preset.value == name and "reset to " + name in panel.status.value


def test_a_wrong_size_upload_offers_the_fit_box(panel):
    big = Image.open(example_path("crypko_01")).resize((600, 700))
    data = io.BytesIO()
    big.save(data, "PNG")
    panel._guard(panel.load_character, data.getvalue())
    assert "tick &#x27;scale to fit&#x27;" in panel.status.value and "fit=True" not in panel.status.value
    panel.fit.value = True
    panel.load_character(data.getvalue())
    assert panel.character.rgba.shape == (512, 512, 4) and panel.source.value
    panel.sliders["head_y_index"].value = 0.5
    assert panel.status.value == ""  # the next edit clears the last message
