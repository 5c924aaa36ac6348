"""``--backend auto`` as the default everywhere an engine is built, the first line that names the path and why, and
the progress bars of long commands (a total, so that tqdm shows the time left)."""

from __future__ import annotations

import argparse
import inspect
import re
import sys

import pytest
import torch
from PIL import Image

from talkinghead_nb import cli
from talkinghead_nb.cluster.batch import export_many
from talkinghead_nb.cluster.engines import EngineSpec
from talkinghead_nb.engine import choose_backend
from talkinghead_nb.engine.backend_choice import BACKENDS
from talkinghead_nb.live import LiveServer
from talkinghead_nb.prep import matting
from talkinghead_nb.widgets import recording_bar

OFFLINE_CPU = ["--device", "cpu", "--offline"]
ENGINE_LINE = re.compile(r"engine: (?P<backend>[\w-]+)( \+ CUDA graphs)? \((?P<variant>\w+) on (?P<device>[\w:]+)\): "
                         r"(?P<reason>\S.*)")


def first_line(stderr: str) -> re.Match:
    """The engine line, checked to be the first one on stderr."""
    line = stderr.lstrip().splitlines()[0]
    match = ENGINE_LINE.fullmatch(line)
    assert match, stderr
    return match


def test_render_by_default_says_first_which_path_it_chose_and_why(tmp_path, capsys):
    out = tmp_path / "auto.png"
    assert cli.main(["render", "crypko_00", str(out), *OFFLINE_CPU]) == 0
    captured = capsys.readouterr()
    line = first_line(captured.err)
    auto = choose_backend(torch.device("cpu"))
    assert line["backend"] == auto.backend and line["device"] == "cpu" and line["variant"] == "separable_float"
    assert line["reason"] == auto.reason.partition(": ")[2]
    assert f", {auto.backend}, " in captured.out and Image.open(out).size == (512, 512)


def test_exact_is_the_torch_path_and_says_it_was_asked_for(tmp_path, capsys):
    assert cli.main(["render", "crypko_00", str(tmp_path / "exact.png"), *OFFLINE_CPU, "--backend", "exact"]) == 0
    captured = capsys.readouterr()
    line = first_line(captured.err)
    assert (line["backend"], line["reason"]) == ("torch", "asked for (--backend exact)")
    assert "(separable_float on cpu, torch, " in captured.out


def test_every_engine_command_defaults_to_auto_and_its_help_says_what_auto_picks():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in ("serve", "record", "speak", "sprites", "sprites-batch", "contact-sheet", "render"):
        backend = next(a for a in commands[name]._actions if a.dest == "backend")
        assert backend.default == "auto", name
        assert "openvino-bf16" in backend.help and "CUDA graphs" in backend.help and "bit-faithful" in backend.help


def test_the_ray_paths_default_to_auto():
    assert EngineSpec().backend == "auto"
    assert inspect.signature(export_many).parameters["backend"].default == "auto"


def test_a_live_server_without_a_poser_builds_the_automatic_one():
    server = LiveServer("crypko_00", device="cpu", port=0)  # not started: only its engine is looked at
    assert server.poser.backend in BACKENDS and server.poser.backend == choose_backend(torch.device("cpu")).backend
    assert server.poser.backend_reason.startswith(server.poser.backend)


def test_contact_sheet_shows_a_progress_bar_with_its_total(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert cli.main(["contact-sheet", "crypko_00", str(out), "--names", "joy,sadness", *OFFLINE_CPU,
                     "--backend", "torch"]) == 0
    err = capsys.readouterr().err
    assert first_line(err)["backend"] == "torch"
    assert "emotions of crypko_00: 100%" in err and "2/2" in err and out.exists()


def test_frame_bars_have_a_total_and_quiet_has_none(capsys):
    bar = cli._frames_bar(argparse.Namespace(quiet=False), 3)
    assert list(bar(iter(range(3)))) == [0, 1, 2]
    assert "3/3" in capsys.readouterr().err
    assert cli._frames_bar(argparse.Namespace(quiet=True), 3) is None


def test_background_removal_says_the_first_time_that_it_may_take_a_minute(monkeypatch, capsys):
    pytest.importorskip("pymatting")
    monkeypatch.delitem(sys.modules, "pymatting")  # as in a process that has not removed a background yet
    matting._pymatting()
    assert "first run: numba compiles, this may take a minute" in capsys.readouterr().err
    matting._pymatting()
    assert capsys.readouterr().err == ""


def test_a_notebook_recording_bar_counts_to_its_total(capsys):
    bar = recording_bar(1.0, 4)
    assert list(bar(iter(range(4)))) == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert "recording: 100%" in err and "4/4" in err
