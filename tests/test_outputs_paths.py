"""Output (and audio) paths reach ffmpeg as files: a name that looks like an address (``http:/host:port/…``) or an
option (``-out/…``) is a local path, and no connection is ever made."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import talkinghead_nb.cli as cli_module
from talkinghead_nb.cli import main
from talkinghead_nb.speech import synthesize
from talkinghead_nb.video import AnimationWriter

from .fake_engine import FakePoser
from .test_cli import CPU
from .test_recording import decoded

ADDRESS = "http:/127.0.0.1:{port}"  # as a path: folders "http:" and "127.0.0.1:PORT"


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A port on 127.0.0.1 and the list of what each connection made to it sent first (it is closed at once)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                received.append(connection.recv(200))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


@pytest.mark.parametrize("folder", ["-out", ADDRESS])
def test_the_writer_hands_ffmpeg_files_never_addresses_or_options(tmp_path, monkeypatch, listener, folder):
    port, received = listener
    monkeypatch.chdir(tmp_path)
    folder = Path(folder.format(port=port))
    sound = folder / "sound.wav"
    sound.parent.mkdir(parents=True)
    sound.write_bytes(synthesize("Hi.").wav())
    with AnimationWriter(folder / "clip.webm", 5, audio=sound) as writer:
        for _ in range(3):
            writer.add(np.zeros((512, 512, 4), np.uint8))
    assert received == []
    assert decoded(tmp_path / folder / "clip.webm", "v")[0] == 3 and decoded(tmp_path / folder / "clip.webm", "a")


@pytest.mark.parametrize("folder", ["./-out", ADDRESS])
def test_record_writes_an_address_or_option_like_path_as_a_local_file(tmp_path, monkeypatch, capsys, listener,
                                                                       folder):
    """The issue's command: record CHARACTER http:/127.0.0.1:PORT/clip.gif POSTed the GIF there."""
    port, received = listener
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_module, "_poser", lambda *args, **options: FakePoser())
    out = f"{folder.format(port=port)}/clip.gif"
    assert main(["record", "crypko_00", out, "--seconds", "0.4", "--fps", "5", "--quiet", *CPU]) == 0, \
        capsys.readouterr().err
    assert received == []
    assert (tmp_path / out).read_bytes()[:6] == b"GIF89a"
    assert sorted(p.name for p in (tmp_path / out).parent.iterdir()) == ["clip.gif"]
