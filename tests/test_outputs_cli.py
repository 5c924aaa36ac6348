"""record and speak keep what exists (unless --overwrite, and then a speech folder is replaced whole, never merged),
check their arguments before they make anything, leave nothing behind when stopped by SIGTERM, and speak's own
example works on the real engine at CPU speed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import talkinghead_nb.cli as cli_module
from talkinghead_nb.cli import main

from .fake_engine import FakePoser
from .test_cli import CPU, cli, error_line
from .test_recording import decoded

WEBM_HEADER = b"\x1aE\xdf\xa3"


@pytest.fixture
def engine(monkeypatch) -> list[FakePoser]:
    """The fake renderer behind the commands; the list holds each one built (none: the command failed first)."""
    built: list[FakePoser] = []
    monkeypatch.setattr(cli_module, "_poser", lambda *args, **options: built.append(FakePoser()) or built[-1])
    return built


def _earlier_recording(folder: Path, frames: int) -> None:
    folder.mkdir()
    for i in range(frames):
        (folder / f"frame_{i:05d}.png").write_bytes(b"earlier")
    (folder / "speech.wav").write_bytes(b"earlier")


def test_record_refuses_an_existing_file_unless_overwrite(tmp_path, monkeypatch, capsys, engine):
    monkeypatch.chdir(tmp_path)
    Path("clip.webm").write_bytes(b"earlier")
    assert main(["record", "crypko_00", "clip.webm", "--quiet", *CPU]) == 1
    assert error_line(capsys.readouterr().err) == ("error: clip.webm exists: choose a new name, or add --overwrite to "
                                                   "replace it")
    Path("clip.wav").write_bytes(b"earlier")
    assert main(["record", "crypko_00", "clip.gif", "--say", "Hi.", "--quiet", *CPU]) == 1
    assert error_line(capsys.readouterr().err).startswith("error: clip.wav exists: choose a new name")
    assert engine == [] and sorted(p.name for p in tmp_path.iterdir()) == ["clip.wav", "clip.webm"]
    assert main(["record", "crypko_00", "clip.webm", "--seconds", "0.4", "--fps", "5", "--overwrite", "--quiet",
                 *CPU]) == 0
    assert Path("clip.webm").read_bytes()[:4] == WEBM_HEADER and decoded("clip.webm", "v")[0] == 2


def test_speak_refuses_an_earlier_recording_and_replaces_it_whole_with_overwrite(tmp_path, monkeypatch, capsys,
                                                                                  engine):
    monkeypatch.chdir(tmp_path)
    _earlier_recording(Path("clip"), 75)
    assert main(["speak", "crypko_00", "Hi.", "clip", "--fps", "5", "--quiet", *CPU]) == 1
    assert error_line(capsys.readouterr().err) == ("error: clip holds a recording already: choose a new folder, or "
                                                   "add --overwrite to replace it")
    assert engine == [] and len(list(Path("clip").iterdir())) == 76
    assert main(["speak", "crypko_00", "Hi.", "clip", "--fps", "5", "--overwrite", "--quiet", *CPU]) == 0
    frames = engine[0].frames
    assert sorted(p.name for p in Path("clip").iterdir()) == [
        *(f"frame_{i:05d}.png" for i in range(frames)), "speech.mp4", "speech.wav"]  # no stale frame
    assert f"wrote {frames} frames at 5 FPS" in capsys.readouterr().out
    assert decoded("clip/speech.mp4", "v")[0] == frames and Path("clip/speech.wav").read_bytes()[:4] == b"RIFF"
    Path("clip/notes.txt").write_text("mine")
    assert main(["speak", "crypko_00", "Hi.", "clip", "--overwrite", "--quiet", *CPU]) == 1
    assert "clip holds other files (notes.txt): choose a new or empty folder" in error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"] and len(engine) == 1


@pytest.mark.parametrize("command", [["speak", "crypko_00", "Hi.", "new/clip"], ["record", "crypko_00",
                                                                                  "new/clip.webm"]])
def test_bad_arguments_are_refused_before_anything_is_made(tmp_path, monkeypatch, capsys, engine, command):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--fps", "0", "--quiet", *CPU]) == 1
    assert engine == [] and list(tmp_path.iterdir()) == []
    assert error_line(capsys.readouterr().err) == "error: fps must be above 0 and at most 60, got 0"


def _wait_for(found, process: subprocess.Popen, seconds: float = 600) -> None:
    """Poll until ``found()`` is true while ``process`` runs (the deadline only stops a hung test)."""
    deadline = time.monotonic() + seconds
    while not found():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the recording never began"
        time.sleep(0.1)


@pytest.mark.parametrize(("command", "begun"), [
    (["record", "crypko_00", "clip.webm", "--say", "Hello there.", "--fps", "5"], ".recording-*"),
    (["speak", "crypko_00", "Hello there.", "clip", "--fps", "5"], "speech.wav"),
])
def test_sigterm_stops_with_143_and_leaves_nothing(tmp_path, command, begun):
    """A real CLI process on the real engine, sent SIGTERM once its recording has begun (its scratch holds files)."""
    process = subprocess.Popen([sys.executable, "-m", "talkinghead_nb.cli", *command, "--quiet", *CPU], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any(tmp_path.rglob(begun)), process)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=600)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert error_line(err) == ("error: stopped (SIGTERM); files already written are complete: run the command again "
                               "to finish")
    assert list(tmp_path.iterdir()) == []


def test_speak_writes_its_example_on_the_real_engine_with_every_frame_in_the_video(tmp_path):
    """The README's example at CPU speed: frames come slower than ffmpeg reads the sound, and outlast it."""
    out = tmp_path / "out"
    result = cli("speak", "lambda_00", "Hi there.", str(out), "--fps", "5", "--quiet", *CPU, timeout=900)
    assert result.returncode == 0, result.stderr
    frames = len(list(out.glob("frame_*.png")))
    assert f"wrote {frames} frames at 5 FPS" in result.stdout and frames >= 4
    assert decoded(out / "speech.mp4", "v")[0] == frames
    assert decoded(out / "speech.mp4", "a")[1] == pytest.approx(frames / 5, abs=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
