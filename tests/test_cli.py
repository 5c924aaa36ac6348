from __future__ import annotations

import numpy as np
from PIL import Image

from talkinghead_nb.character import example_path
from talkinghead_nb.cli import main


def test_render_writes_a_png(tmp_path, capsys):
    out = tmp_path / "joy.png"
    assert main(["render", str(example_path("crypko_00")), str(out), "--emotion", "joy", "--device", "cpu",
                 "--offline", "--set", "head_y_index=0.5"]) == 0
    image = Image.open(out)
    assert image.size == (512, 512) and image.mode == "RGBA"
    assert np.asarray(image)[..., 3].any()
    assert "joy on crypko_00" in capsys.readouterr().out


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["render", "crypko_00", str(tmp_path / "x.png"), "--emotion", "smug", "--offline"]) == 2
    assert "unknown emotion 'smug'" in capsys.readouterr().err
    assert main(["render", "crypko_00", str(tmp_path / "x.png"), "--set", "nose_index=1", "--offline"]) == 2
    assert "unknown pose parameter(s): 'nose_index'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_weights_command_lists_sources(capsys):
    assert main(["weights", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "separable_float  embedded" in out and "cast from separable_float" in out


def test_serve_runs_until_interrupted():
    import os
    import re
    import signal
    import subprocess
    import sys

    import httpx

    process = subprocess.Popen([sys.executable, "-m", "talkinghead_nb.cli", "serve", "crypko_00", "--port", "0",
                                "--device", "cpu", "--offline"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("feed: "):
                break
        url = re.search(r"at (http://127\.0\.0\.1:\d+)", "".join(lines)).group(1)
        assert httpx.get(url + "/api/modules", timeout=30).json() == {"modules": ["talkinghead"]}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
