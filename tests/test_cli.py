"""The command line: outputs; runtime errors as one line with the fix and exit status 1 (a full disk, no
permission, a file-size limit, an output it cannot write, a misspelt name with a suggestion, the unexpected), usage
errors with exit status 2, Ctrl-C with 130, with no traceback and no half-written file; the listing commands and
the help texts."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import talkinghead_nb.cli as cli_module
from talkinghead_nb.character import example_path
from talkinghead_nb.cli import DEBUG_ENV, build_parser, cli_words, describe_error, main
from talkinghead_nb.emotions import EMOTIONS
from talkinghead_nb.paths import emotions_dir

from .cluster_fakes import ctrl_c_allowed

CPU = ["--device", "cpu", "--offline", "--backend", "torch"]  # the exact path: outputs as the reference renders them


def cli(*args: str, **options) -> subprocess.CompletedProcess:
    """The command in a process of its own, as a shell runs it."""
    return subprocess.run([sys.executable, "-m", "talkinghead_nb.cli", *args], capture_output=True, text=True,
                          **options)


def error_line(stderr: str) -> str:
    """The one line an error gives (after a progress bar, if there was one), checked to be the only one."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and sum(line.startswith("error: ") for line in lines) == 1, stderr
    assert lines[-1].startswith("error: "), stderr
    return lines[-1]


def test_render_writes_a_png_creating_its_folder(tmp_path, capsys):
    out = tmp_path / "new" / "folder" / "joy.png"
    assert main(["render", str(example_path("crypko_00")), str(out), "--emotion", "joy", *CPU,
                 "--set", "head_y_index=0.5"]) == 0
    image = Image.open(out)
    assert image.size == (512, 512) and image.mode == "RGBA"
    assert np.asarray(image)[..., 3].any()
    assert capsys.readouterr().out.startswith(f"wrote {out}: joy on crypko_00 (separable_float on cpu, ")
    assert os.listdir(out.parent) == ["joy.png"]


def test_runtime_errors_exit_1_with_one_line_that_says_what_to_do(tmp_path, capsys):
    assert main(["render", "crypko_00", str(tmp_path / "x.png"), "--emotion", "smug", *CPU]) == 1
    assert "unknown emotion 'smug'" in error_line(capsys.readouterr().err)
    assert main(["render", "crypko_00", str(tmp_path / "x.xyz"), *CPU]) == 1
    assert "x.xyz: Pillow cannot write .xyz images; name the output .png" in error_line(capsys.readouterr().err)
    assert main(["contact-sheet", "crypko_00", str(tmp_path / "x.xyz"), *CPU]) == 1
    assert "matplotlib cannot write .xyz figures" in error_line(capsys.readouterr().err)
    assert main(["render", "crypko_00", str(tmp_path / "x.png"), "--device", "gpu", "--offline"]) == 1
    assert "unknown device 'gpu': use 'auto', 'cpu'" in error_line(capsys.readouterr().err)
    assert main(["check", "lambda_99"]) == 1
    assert "unknown example character 'lambda_99'; did you mean lambda_0" in error_line(capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


@pytest.fixture
def no_engine(monkeypatch):
    """The engine must not be built: the command fails before it renders anything."""
    monkeypatch.setattr(cli_module, "_poser", lambda *a, **k: pytest.fail("the engine was built"))


@pytest.mark.parametrize(("output", "message"), [
    ("x.jpg", "x.jpg: JPEG cannot hold an alpha channel, so the transparent background would be lost; name the "
              "output .png or .webp"),
    ("x.psd", "x.psd: Pillow cannot write .psd images"),
    ("a-file/x.png", "a-file/x.png: Not a directory; a part of the path is a file, not a folder"),
    ("folder", "folder: Is a directory; that is a folder: give a file name"),
])
def test_render_checks_the_output_before_rendering(tmp_path, monkeypatch, capsys, no_engine, output, message):
    monkeypatch.chdir(tmp_path)
    Path("a-file").write_text("")
    Path("folder").mkdir()
    assert main(["render", "lambda_00", output, *CPU]) == 1
    assert error_line(capsys.readouterr().err).startswith(f"error: {message}")
    assert sorted(os.listdir()) == ["a-file", "folder"] and not os.listdir("folder")


def test_an_output_without_a_suffix_is_a_png(tmp_path):
    # In a fresh process: there Pillow has loaded no writers yet, which once made this "cannot write  images".
    code = "from talkinghead_nb.cli import image_format; print(image_format('x'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "PNG", done.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["render", "lambda_00", "x.png", "--set", "head_y=0.5"],
     "argument --set: unknown pose parameter 'head_y'; did you mean head_y_index? (talkinghead-nb params"),
    (["render", "lambda_00", "x.png", "--set", "eye_wink=1"],
     "did you mean eye_wink_left_index or eye_wink_right_index?"),
    (["render", "lambda_00", "x.png", "--set", "head_y_index"], "'head_y_index': expected KEY=NUMBER"),
    (["render", "lambda_00", "x.png", "--model", "separable_flot"],
     "argument --model: unknown variant 'separable_flot'; did you mean separable_float"),
    (["sprites", "lambda_00", "out", "--backend", "openvino-bf"], "did you mean openvino-bf16"),
    (["serve", "--backend", "openvino-bf"], "did you mean openvino-bf16"),
    (["weights", "standard_flaot"], "unknown variant 'standard_flaot'; did you mean standard_float"),
    (["repair", "lambda_00", "out.png"], "choose at least one repair: --background, --fit, --specks, --hidden"),
    (["render", "lambda_00"], "the following arguments are required: output"),
    (["sprites-batch", "in", "out", "--workers", "0"], "argument --workers: expected a whole number of 1 or more, "
                                                        "got '0'"),
    (["sprites-batch", "in", "out", "--workers", "two"], "argument --workers: expected a whole number"),
    (["sprites-batch", "in", "out", "--stall-timeout", "0"], "argument --stall-timeout: expected a number above 0"),
    (["sprites-batch", "in", "out", "--stall-timeout", "nan"], "argument --stall-timeout: expected a number above 0"),
    (["serve", "--ray", "local", "--replicas", "-1"], "argument --replicas: expected a whole number of 1 or more"),
])
def test_usage_errors_exit_2_with_the_usage(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("usage: talkinghead-nb") and words in err, err
    assert "Traceback" not in err and not os.listdir()


@pytest.mark.parametrize(("args", "words"), [
    (["render", "lambda_00", "x.png", "--emotion", "joyful"],
     "unknown emotion 'joyful'; did you mean joy? (talkinghead-nb emotions lists all"),
    (["render", "lambda_00", "x.png", "--emotion", "angry"], "unknown emotion 'angry'; did you mean anger?"),
    (["sprites", "lambda_00", "out", "--names", "joy,angry"], "unknown emotion 'angry'; did you mean anger?"),
    (["reset-emotions", "joyful"], "unknown emotion 'joyful'; did you mean joy?"),
    (["render", "lamda_00", "x.png"], "unknown example character 'lamda_00'; did you mean lambda_00"),
    (["repair", "crypko_0", "x.png", "--specks"], "unknown example character 'crypko_0'; did you mean crypko_00"),
    (["check", "lambda_00", "--template", "lambda00"], "did you mean lambda_00"),
])
def test_misspelt_names_get_a_suggestion(tmp_path, monkeypatch, capsys, no_engine, args, words):
    monkeypatch.chdir(tmp_path)
    assert main([*args, *(CPU if args[0] in ("render", "sprites") else [])]) == 1
    assert words in error_line(capsys.readouterr().err)
    assert not os.listdir()


def test_hints_name_flags_and_the_flags_work(tmp_path, capsys):
    tall = tmp_path / "tall.png"
    Image.open(example_path("crypko_00")).resize((512, 768)).save(tall)
    out = tmp_path / "out.png"
    assert main(["render", str(tall), str(out), *CPU]) == 1
    line = error_line(capsys.readouterr().err)
    assert "512×768" in line and "add --fit to scale it" in line and "fit=True" not in line
    assert main(["render", "crypko_00", str(out), "--set", "head_y_index=3", *CPU]) == 1
    assert error_line(capsys.readouterr().err).endswith("outside its range [-1, 1]; add --clip to clamp it")
    assert main(["render", str(tall), str(out), "--fit", "--set", "head_y_index=3", "--clip", *CPU]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: neutral on tall (separable_float on cpu, ")
    assert Image.open(out).size == (512, 512)
    assert cli_words("backend='openvino' runs on the CPU only: use device='cpu', or backend='torch' on cuda") == \
        "--backend openvino runs on the CPU only: use --device cpu, or --backend torch on cuda"
    assert cli_words("put the files into models/x, or allow the download from a/b") == \
        "put the files into models/x, or run without --offline to download from a/b"


def test_check_names_the_repair_flags_and_writes_its_plots(tmp_path, capsys):
    assert main(["check", "lambda_01", "--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "fix: talkinghead-nb repair lambda_01 lambda_01-repaired.png --specks" in out
    assert "prep." not in out and "`" not in out
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        f"lambda_01-{name}.png" for name in ("alignment", "backgrounds", "edges", "specks")]
    tall = tmp_path / "tall.png"
    Image.open(example_path("crypko_00")).resize((512, 768)).save(tall)
    assert main(["check", str(tall)]) == 1
    assert f"repair {tall} tall-repaired.png --fit" in capsys.readouterr().out


def test_repair_takes_example_names_and_refuses_before_working(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["repair", "lambda_01", "clean.png", "--specks"]) == 0
    assert capsys.readouterr().out.endswith("wrote clean.png; check it with: talkinghead-nb check clean.png\n")
    assert main(["check", "clean.png"]) == 0
    assert "specks       one connected silhouette" in capsys.readouterr().out
    monkeypatch.setattr("talkinghead_nb.prep.REPAIRS", {"specks": lambda image: pytest.fail("repaired")})
    assert main(["repair", "lambda_01", "clean.png", "--specks"]) == 1
    assert "clean.png exists: choose a new name" in error_line(capsys.readouterr().err)
    assert main(["repair", "lambda_01", "clean.jpg", "--specks"]) == 1
    assert "a repaired character is a PNG" in error_line(capsys.readouterr().err)


def test_emotions_and_params_list_what_exists(tmp_path, capsys):
    emotions = tmp_path / "emotions"
    shutil.copytree(emotions_dir(), emotions)
    (emotions / "smug.json").write_text(json.dumps({"smug": {"mouth_smirk": 1.0}}))
    (emotions / "joy.json").write_text(json.dumps({"joy": {"mouth_aaa_index": 0.25}}))
    (emotions / "anger.json").write_text("")
    assert main(["emotions", "--emotions", str(emotions)]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["smug"] == ["custom", "smug.json"] and rows["joy"] == ["edited", "joy.json"]
    assert rows["anger"] == ["factory", "_defaults.json"] and rows["neutral"][0] == "factory"
    assert set(EMOTIONS) < set(rows)
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("45 pose parameters") and "face rotation (3)" in out
    assert re.search(r"^  head_y_index +\[-1, 1\]$", out, re.M) and re.search(r"^  mouth_smirk +\[0, 1\]$", out, re.M)
    assert sum(line.startswith("  ") for line in out.splitlines()) == 45


def test_emotions_counts_28_and_lists_zero_apart_as_the_rest_pose(capsys):
    assert main(["emotions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("28 emotions in")
    rest = next(i for i, line in enumerate(lines) if line.startswith("and the rest pose"))
    assert [line.split()[0] for line in lines[1:rest]] == sorted(EMOTIONS)
    assert [line.split()[0] for line in lines[rest + 1:]] == ["zero"]


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_argument_has_help_and_no_markup():
    parsers = list(_parsers(build_parser()))
    assert len(parsers) == 16
    for parser in parsers:
        for action in parser._actions:
            assert action.help, (parser.prog, action.dest)
        text = parser.format_help()
        assert "``" not in text and ":func:" not in text and "Poser(" not in text, parser.prog


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_line(capsys):
    assert main(["render", "crypko_00", "/dev/full", *CPU]) == 1
    line = error_line(capsys.readouterr().err)
    assert line == "error: /dev/full: No space left on device; free some space, or write to another disk"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode), "a device is written into, never renamed over"


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder this process may not write into: a read-only one, or for root (who may write anywhere) sysfs."""
    if os.geteuid() == 0:
        if not Path("/sys/kernel").is_dir():
            pytest.skip("root needs sysfs for a folder it cannot write into")
        yield Path("/sys")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def test_no_permission_is_one_line(unwritable_folder, capsys):
    target = unwritable_folder / "talkinghead-nb-test.png"
    assert main(["render", "crypko_00", str(target), *CPU]) == 1
    line = error_line(capsys.readouterr().err)
    assert line == f"error: {target}: Permission denied; choose a place you may write to, or change its permissions"
    assert not target.exists()


def test_a_write_that_fails_midway_leaves_no_partial_file(tmp_path):
    """A real failure halfway through the write: the file-size limit (ulimit -f) is below the PNG's size."""
    out = tmp_path / "out"
    out.mkdir()
    limit = 64 * 1024  # a rendered character is several times larger
    result = cli("render", "crypko_00", str(out / "x.png"), *CPU,
                 preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert result.returncode == 1
    assert error_line(result.stderr) == (f"error: {out / 'x.png'}: File too large; the file exceeds the size this "
                                         "process may write (ulimit -f): raise the limit, or write elsewhere")
    assert os.listdir(out) == [], "neither the target nor a temporary file is left"


def _read_until(process: subprocess.Popen, text: bytes, seconds: float = 300) -> bytes:
    """stderr of ``process`` until ``text`` appears (the deadline only stops a hung test)."""
    seen, deadline = b"", time.monotonic() + seconds
    while text not in seen:
        assert process.poll() is None and time.monotonic() < deadline, seen.decode(errors="replace")
        if select.select([process.stderr], [], [], 1.0)[0]:
            seen += os.read(process.stderr.fileno(), 4096)
    return seen


def test_ctrl_c_is_one_line_and_exit_status_130(tmp_path):
    folder = tmp_path / "sprites"
    process = subprocess.Popen([sys.executable, "-m", "talkinghead_nb.cli", "sprites", "crypko_00", str(folder), *CPU],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=ctrl_c_allowed)
    try:
        # the bar's first step: the export is under way (a Ctrl-C while tqdm still builds its bar would leave the
        # message on the bar's line, a race this test is not about)
        seen = _read_until(process, b"1/28")
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    line = error_line((seen + rest).decode())
    assert line.startswith("error: interrupted (Ctrl-C); files already written are complete")
    assert not [p.name for p in folder.iterdir() if not re.fullmatch(r"[a-z]+\.png", p.name)]


def test_an_unexpected_error_names_its_type_and_how_to_report_it():
    line = describe_error(ZeroDivisionError("division by zero"))
    assert line.startswith("unexpected ZeroDivisionError: division by zero")
    assert "please report it" in line and f"{DEBUG_ENV}=1 shows the traceback" in line
    assert describe_error(ValueError("two\nlines")) == "two lines"


def test_debug_mode_adds_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert main(["render", "crypko_00", str(tmp_path / "x.xyz"), *CPU]) == 1
    err = capsys.readouterr().err
    engine, traceback_, *_, last = err.strip().splitlines()  # the engine line comes first in every engine command
    assert engine.startswith("engine: ") and traceback_.startswith("Traceback") and last.startswith("error: ")


@pytest.mark.parametrize(("flag", "tuned"), [((), "True"), (("--no-tune-allocator",), "False")])
def test_the_commands_tune_the_allocator_unless_told_not_to(tmp_path, flag, tuned):
    script = ("import sys, talkinghead_nb.engine.acceleration as A; from talkinghead_nb.cli import main; "
              "assert main(sys.argv[1:]) == 0; print(A._heap_tuned)")
    result = subprocess.run([sys.executable, "-c", script, "render", "crypko_00", str(tmp_path / "x.png"), *CPU,
                             *flag], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == tuned


def test_weights_command_lists_sources(capsys):
    assert main(["weights", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "separable_float  embedded" in out and "cast from separable_float" in out


def test_serve_runs_until_interrupted_with_its_key_from_a_file_and_a_named_origin(tmp_path):
    import httpx

    (tmp_path / "key").write_text("s3cret-key\n")
    sillytavern = "http://192.168.1.20:8000"
    process = subprocess.Popen([sys.executable, "-m", "talkinghead_nb.cli", "serve", "crypko_00", "--port", "0", *CPU,
                                "--api-key-file", str(tmp_path / "key"), "--allow-origin", sillytavern],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=ctrl_c_allowed)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "feed: " in line:
                break
        assert lines[0].startswith("engine: torch (separable_float on cpu)")  # the first line: the path and why
        assert "crypko_00 with separable_float on cpu via torch at" in "".join(lines)  # the banner names it too
        url = re.search(r"at (http://127\.0\.0\.1:\d+)", "".join(lines)).group(1)
        key = {"Authorization": "Bearer s3cret-key"}
        assert httpx.get(url + "/api/modules", timeout=30).status_code == 401  # the file's key is needed
        assert httpx.get(url + "/api/modules", headers=key, timeout=30).json() == {
            "modules": ["talkinghead", "classify"]}
        named = httpx.get(url + "/api/modules", headers={**key, "Origin": sillytavern}, timeout=30)
        assert named.headers["access-control-allow-origin"] == sillytavern
        other = httpx.get(url + "/api/modules", headers={**key, "Origin": "https://evil.example"}, timeout=30)
        assert other.status_code == 403 and "allow-origin" in other.text
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()


def test_serve_names_a_bad_key_file_or_origin_before_it_starts(tmp_path):
    missing = cli("serve", "crypko_00", "--port", "0", *CPU, "--api-key-file", str(tmp_path / "nokey"))
    assert missing.returncode == 1 and "nokey" in error_line(missing.stderr)
    star = cli("serve", "crypko_00", "--port", "0", *CPU, "--allow-origin", "*")
    assert star.returncode == 2 and "any web site" in star.stderr


def test_serve_names_the_port_flag_when_the_port_is_held():
    import socket

    from talkinghead_nb.live.server import _bind

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(RuntimeError) as held:
            _bind("127.0.0.1", holder.getsockname()[1])
    line = describe_error(held.value)
    assert "pass another --port, or --port 0 for any free one" in line and "port=" not in line


def test_record_refuses_zero_seconds_instead_of_recording_the_default(tmp_path):
    result = cli("record", "crypko_00", str(tmp_path / "clip.gif"), "--seconds", "0", *CPU)
    assert result.returncode == 1 and "seconds must be a number above 0" in error_line(result.stderr)
    assert not (tmp_path / "clip.gif").exists()


def test_speak_records_frames_and_audio(tmp_path):
    result = cli("speak", "crypko_00", "Hi.", str(tmp_path / "clip"), "--fps", "3", "--no-video", "--quiet", *CPU)
    assert result.returncode == 0, result.stderr
    frames = sorted((tmp_path / "clip").glob("frame_*.png"))
    assert len(frames) >= 2 and (tmp_path / "clip" / "speech.wav").read_bytes()[:4] == b"RIFF"
    assert "wrote" in result.stdout and "frames at 3 FPS" in result.stdout
    bad = cli("speak", "crypko_00", "", str(tmp_path / "none"), *CPU)
    assert bad.returncode == 1 and error_line(bad.stderr) and bad.stderr.startswith("engine: torch ")


def test_record_writes_an_animation_and_refuses_what_it_cannot_write(tmp_path):
    result = cli("record", "crypko_00", str(tmp_path / "clip.gif"), "--seconds", "0.5", "--fps", "4", "--emotion",
                 "joy", "--talking", "--effects", "noir", "--quiet", *CPU)
    assert result.returncode == 0, result.stderr
    assert "wrote 2 frames at 4 FPS (0.5 s)" in result.stdout and (tmp_path / "clip.gif").read_bytes()[:6] == b"GIF89a"
    bad = cli("record", "crypko_00", str(tmp_path / "clip.avi"), *CPU)
    assert bad.returncode == 1 and "the suffix picks the format" in error_line(bad.stderr)
    script = tmp_path / "script.json"
    script.write_text('{"seconds": 2, "steps": [{"at": 1, "emotion": "jooy"}]}')
    bad = cli("record", "crypko_00", str(tmp_path / "clip.webp"), "--script", str(script), *CPU)
    assert bad.returncode == 1 and "steps[0].emotion: unknown emotion 'jooy'" in error_line(bad.stderr)
    script.write_text('{"seconds": 2,')
    bad = cli("record", "crypko_00", str(tmp_path / "clip.webp"), "--script", str(script), *CPU)
    assert bad.returncode == 1 and "not valid JSON" in error_line(bad.stderr)
    bad = cli("record", "crypko_00", str(tmp_path / "clip.webp"), "--effects", "sparkle", *CPU)
    assert bad.returncode == 1 and "neither a preset (crt, hologram" in error_line(bad.stderr)
    assert not (tmp_path / "clip.webp").exists() and not (tmp_path / "clip.avi").exists()


def test_classify_lists_the_best_emotions_with_their_scores(capsys):
    assert main(["classify", "Thank you so much, you saved me!", "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].split()[0] == "gratitude"
    scores = [float(line.split()[1]) for line in lines]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1


def test_sillytavern_install_copies_the_extension_or_says_why_not(tmp_path):
    from .test_sillytavern import make_sillytavern
    st = make_sillytavern(tmp_path / "SillyTavern")
    done = cli("sillytavern", "install", str(st))
    assert done.returncode == 0 and "installed" in done.stdout, done.stderr
    assert (st / "data" / "default-user" / "extensions" / "talkinghead-nb" / "manifest.json").is_file()
    refused = cli("sillytavern", "install", str(tmp_path))
    assert refused.returncode == 1 and "SillyTavern" in error_line(refused.stderr)
