"""Every notebook runs headless on a real kernel with the real engine (with small parameters), and is committed
without outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FAST_PARAMETERS = {
    "01_quickstart.ipynb": {"SHEET_EMOTIONS": "joy,anger,surprise", "DEVICE": "cpu"},
    "02_manual_poser.ipynb": {"DEVICE": "cpu"},
    "03_character_prep.ipynb": {},
    "04_sprites.ipynb": {"NAMES": "joy,anger", "DEVICE": "cpu", "OVERWRITE": True},
    "05_live.ipynb": {"DEVICE": "cpu", "PORT": 0, "WATCH_SECONDS": 2, "STOP_AT_END": True},
    "06_five_stages.ipynb": {"DEVICE": "cpu"},
    "07_speech.ipynb": {"DEVICE": "cpu", "PORT": 0, "STOP_AT_END": True},
    "08_show_and_share.ipynb": {"DEVICE": "cpu", "PORT": 0, "SECONDS": 0.5, "FPS": 4, "STOP_AT_END": True},
}


def _with_parameters(nb: nbformat.NotebookNode, values: dict[str, object]) -> nbformat.NotebookNode:
    """Append assignments to the cell tagged ``parameters`` (as papermill would inject them)."""
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "".join(f"\n{k} = {v!r}" for k, v in values.items())
    return nb


def _shows_a_picture(output) -> bool:
    """A figure, or a recording embedded as an image or a video."""
    data = output.get("data", {})
    return "image/png" in data or any(tag in data.get("text/html", "") for tag in ("src='data:image", "<video"))


@pytest.mark.parametrize("name", sorted(FAST_PARAMETERS))
def test_notebook_runs_headless(name, tmp_path):
    nb = _with_parameters(nbformat.read(NOTEBOOKS / name, as_version=4), FAST_PARAMETERS[name])
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if _shows_a_picture(o)]
    assert len(images) >= 2, "the notebook shows its figures"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


def test_every_notebook_has_parameters_and_is_stripped():
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks and {p.name for p in notebooks} == set(FAST_PARAMETERS)
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), f"{path.name} has outputs"
        assert any("parameters" in c["metadata"].get("tags", []) for c in code), f"{path.name}: no parameters cell"


def test_the_speech_notebook_says_one_thing_after_the_other():
    """Run All runs notebook 07's two say() cells back to back: the second speech starts when the first ends."""
    nb = json.loads((NOTEBOOKS / "07_speech.ipynb").read_text())
    cell = next("".join(c["source"]) for c in nb["cells"] if "def say(" in "".join(c["source"]))
    starts: list[float] = []

    class Session:
        """Records when each speech starts (the mouth's beat)."""

        def set_emotion(self, name: str) -> None:
            pass

        def speak(self, track: SimpleNamespace, delay: float = 0.0) -> float:
            starts.append(time.monotonic() + delay)
            return track.duration

    track = SimpleNamespace(duration=0.2)
    namespace = {"session": Session(), "display": lambda *_: None, "Audio": lambda *_, **__: None,
                 "speech": SimpleNamespace(track=track, audio=None, sample_rate=16_000)}
    exec(cell, namespace)  # the first say(), then the second cell's
    namespace["say"](track, None, 16_000)
    assert len(starts) == 2 and starts[1] >= starts[0] + track.duration
