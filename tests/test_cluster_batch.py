"""Sprites for many characters without Ray: the inputs (folder, list, glob), the checks before rendering, the
manifest, resuming and retrying, worker processes, and the sprites-batch command."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from talkinghead_nb import cli
from talkinghead_nb.character import example_path
from talkinghead_nb.cluster import batch as batch_module
from talkinghead_nb.cluster import export_many, find_characters
from talkinghead_nb.cluster import worker as worker_module
from talkinghead_nb.cluster.batch import _windowed
from talkinghead_nb.cluster.engines import EngineSpec
from talkinghead_nb.cluster.manifest import JOURNAL, LOCK, MANIFEST, MARKER, BatchLock, ForeignFolder, Manifest, publish
from talkinghead_nb.cluster.worker import BatchSettings, Job, SpriteWorker
from talkinghead_nb.emotions import EmotionLibrary
from talkinghead_nb.sprites import export_many as from_sprites

from .cluster_fakes import CpuFakePoser

NAMES = ("neutral", "joy")


def make_characters(folder, good=4):
    """``good`` example characters and two broken ones: one of the wrong size, one without alpha."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(good):
        (folder / f"crypko_{i:02}.png").write_bytes(example_path(f"crypko_{i:02}").read_bytes())
    Image.open(example_path("crypko_04")).resize((300, 400)).save(folder / "small.png")
    Image.open(example_path("crypko_05")).convert("RGB").save(folder / "noalpha.png")
    return folder


def check_outputs(out, good, broken=("noalpha", "small"), names=NAMES):
    """Every good character's folder holds its sprites and templates; the manifest says what happened to each."""
    manifest = json.loads((out / MANIFEST).read_text())["characters"]
    assert set(manifest) == set(good) | set(broken)
    for name in good:
        entry = manifest[name]
        assert entry["status"] == "done" and entry["sprites"] == len(names) and entry["seconds"] > 0
        assert entry["folder"] == str(out / name)
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == sorted([f"{n}.png" for n in names] + ["_emotions.json", MARKER])
        frames = [np.asarray(Image.open(out / name / f"{n}.png")) for n in names]
        assert all(f.shape == (512, 512, 4) for f in frames)
        assert not np.array_equal(frames[0], frames[1])  # each emotion has its own picture
        assert set(json.loads((out / name / "_emotions.json").read_text())) == set(names)
    assert manifest["small"]["status"] == "failed" and not (out / "small").exists()
    assert [f["check"] for f in manifest["small"]["findings"] if f["level"] == "error"] == ["size"]
    assert "300×400" in manifest["small"]["error"]
    assert [f["check"] for f in manifest["noalpha"]["findings"] if f["level"] == "error"] == ["alpha"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # nothing half-written left
    return manifest


def test_inputs_folder_list_and_glob(tmp_path):
    folder = make_characters(tmp_path / "in", good=2)
    (folder / "notes.md").write_text("not a character")
    assert list(find_characters(folder)) == ["crypko_00", "crypko_01", "noalpha", "small"]
    listing = tmp_path / "list.txt"
    listing.write_text("# two of them\nin/small.png\n\nin/crypko_01.png  # the good one\n")
    assert find_characters(listing) == {"small": folder / "small.png", "crypko_01": folder / "crypko_01.png"}
    assert list(find_characters(str(folder / "crypko_*.png"))) == ["crypko_00", "crypko_01"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "small.png").write_bytes(b"")
    with pytest.raises(ValueError, match="would both write to the folder 'small': rename one"):
        find_characters([folder / "small.png", tmp_path / "other" / "small.png"])
    with pytest.raises(ValueError, match="no characters found"):
        find_characters(str(tmp_path / "*.webp"))
    assert from_sprites is export_many


def test_a_batch_records_every_character_and_a_second_run_resumes(tmp_path):
    folder = make_characters(tmp_path / "in")
    (folder / "empty.png").write_bytes(b"")  # unreadable as an image: reported, never stops the batch
    out = tmp_path / "out"
    fake = CpuFakePoser
    first = export_many(folder, out, names=NAMES, make_poser=fake, progress=False)
    assert sorted(first.rendered) == [f"crypko_{i:02}" for i in range(4)]
    assert sorted(first.failed) == ["empty", "noalpha", "small"]
    manifest = check_outputs(out, first.rendered, broken=("empty", "noalpha", "small"))
    assert manifest["empty"]["findings"][0]["check"] == "file"
    assert "talkinghead-nb check" in manifest["empty"]["findings"][0]["fix"]  # an error never comes without a fix
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}

    (out / "crypko_02" / "joy.png").unlink()   # a folder damaged by hand is not done: the manifest is not trusted
    (out / "crypko_03").rename(out / "gone")  # … nor one that is missing
    log = tmp_path / "renders.log"
    second = export_many(folder, out, names=NAMES, make_poser=functools.partial(CpuFakePoser, log=str(log)),
                         progress=False)
    assert sorted(second.rendered) == ["crypko_02", "crypko_03"] and second.failed == []
    assert sorted(second.skipped) == ["crypko_00", "crypko_01"]
    assert sorted(second.kept_failed) == ["empty", "noalpha", "small"] and "retry_failed=True" in str(second)
    assert len(log.read_text().splitlines()) == 2 * len(NAMES)  # one render per emotion of those two, no more
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p.parent.name in ("crypko_00", "crypko_01"))

    Image.open(example_path("crypko_04")).save(folder / "small.png")  # fixed by its owner
    third = export_many(folder, out, names=NAMES, make_poser=fake, progress=False, retry_failed=True)
    assert third.rendered == ["small"] and sorted(third.failed) == ["empty", "noalpha"]


def test_publish_replaces_its_own_folder_whole_and_no_other_without_overwrite(tmp_path):
    publish(tmp_path, "joy", {"neutral.png": b"old", "stale.png": b"old"}, {"neutral": {}})
    publish(tmp_path, "joy", {"neutral.png": b"new"}, {"neutral": {}})
    assert sorted(p.name for p in (tmp_path / "joy").iterdir()) == [MARKER, "_emotions.json", "neutral.png"]
    assert (tmp_path / "joy" / "neutral.png").read_bytes() == b"new"

    (tmp_path / "mine").mkdir()  # made by hand: left alone
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    (tmp_path / "joy" / "notes.txt").write_text("added by hand")  # the batch's folder, with a file of the user's
    (tmp_path / "plain").write_text("a file")
    (tmp_path / "link").symlink_to(tmp_path / "mine")
    for name, why in (("mine", "the batch did not make it"), ("plain", "it is a file or a link, not a folder"),
                      ("link", "it is a file or a link, not a folder"),
                      ("joy", r"it holds files the batch did not write \(notes\.txt\)")):
        with pytest.raises(ForeignFolder, match=rf"{re.escape(str(tmp_path / name))} exists and {why}.*--overwrite"):
            publish(tmp_path, name, {"neutral.png": b"new"}, {"neutral": {}})
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "joy" / "notes.txt").read_text() == "added by hand"
    assert (tmp_path / "plain").read_text() == "a file"

    for name in ("link", "mine", "plain"):
        publish(tmp_path, name, {"neutral.png": b"new"}, {"neutral": {}}, overwrite=True)
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [MARKER, "_emotions.json", "neutral.png"]
        assert not (tmp_path / name).is_symlink()
        if name == "link":  # the link was replaced, not what it points to
            assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joy", "link", "mine", "plain"]  # nothing left beside


WATCH = """import os, sys
path, stop, missing = sys.argv[1], sys.argv[2], 0
print("ready", flush=True)
while not os.path.exists(stop):
    missing += not os.path.exists(path)
print(missing)
"""


def test_a_folder_being_replaced_is_never_missing(tmp_path):
    """Replaced in one step: another process that looks all the time never finds the folder gone."""
    publish(tmp_path, "c", {"neutral.png": b"0"}, {"neutral": {}})
    stop = tmp_path / "stop"
    watcher = subprocess.Popen([sys.executable, "-c", WATCH, str(tmp_path / "c" / "neutral.png"), str(stop)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout.readline() == "ready\n"
        for i in range(300):
            publish(tmp_path, "c", {"neutral.png": str(i).encode()}, {"neutral": {}})
    finally:
        stop.touch()
        missing = watcher.communicate(timeout=60)[0]
    assert missing == "0\n"
    assert (tmp_path / "c" / "neutral.png").read_bytes() == b"299"


class Intruder(CpuFakePoser):
    """Makes a folder of the user's (``folder/notes.txt``) appear while the batch renders its first character."""

    def __init__(self, folder: Path, log: str):
        super().__init__(log=log)
        self.folder = folder

    def render_array(self, character, poses):
        if not self.folder.exists():
            self.folder.mkdir()
            (self.folder / "notes.txt").write_text("mine")
        return super().render_array(character, poses)


def test_a_batch_leaves_folders_it_did_not_make_alone_unless_overwrite(tmp_path):
    folder = make_characters(tmp_path / "in", good=3)
    out = tmp_path / "out"
    (out / "crypko_00").mkdir(parents=True)
    (out / "crypko_00" / "notes.txt").write_text("mine")  # there before the batch
    log = tmp_path / "renders.log"
    first = export_many(folder, out, names=NAMES, progress=False,
                        make_poser=functools.partial(Intruder, out / "crypko_02", str(log)))  # … and during it
    assert first.rendered == ["crypko_01"] and sorted(first.failed) == ["crypko_00", "crypko_02", "noalpha", "small"]
    assert len(log.read_text().splitlines()) == 2 * len(NAMES)  # crypko_00 was refused before rendering
    manifest = json.loads((out / MANIFEST).read_text())["characters"]
    for name in ("crypko_00", "crypko_02"):
        assert sorted(p.name for p in (out / name).iterdir()) == ["notes.txt"]
        assert (out / name / "notes.txt").read_text() == "mine"
        finding = manifest[name]["findings"][-1]
        assert finding["check"] == "folder" and manifest[name]["folder"] is None
        assert finding["message"] == manifest[name]["error"] == (
            f"{out / name} exists and the batch did not make it, so the batch leaves it alone: move it away, or "
            "replace it with overwrite=True (--overwrite)")
        assert "--overwrite" in finding["fix"]

    second = export_many(folder, out, names=NAMES, make_poser=CpuFakePoser, progress=False, retry_failed=True,
                         overwrite=True)
    assert sorted(second.rendered) == ["crypko_00", "crypko_02"] and second.skipped == ["crypko_01"]
    check_outputs(out, [f"crypko_{i:02}" for i in range(3)])  # replaced whole: no notes.txt


def test_worker_processes_render_each_character_once(tmp_path):
    folder = make_characters(tmp_path / "in")
    result = export_many(folder, tmp_path / "out", names=NAMES, workers=2, make_poser=CpuFakePoser,
                         progress=False)
    assert len(result.rendered) == 4 and result.per_minute > 0
    check_outputs(tmp_path / "out", result.rendered)


def test_sprites_batch_command_reports_and_exits_1_when_a_character_failed(tmp_path, capsys):
    folder = make_characters(tmp_path / "in", good=0)
    out = tmp_path / "out"
    args = ["sprites-batch", str(folder), str(out), "--names", ",".join(NAMES), "--device", "cpu", "--offline",
            "--quiet"]
    assert cli.main(args) == 1
    printed = capsys.readouterr().out
    assert "0 character(s) rendered, 2 failed" in printed and "run again with --retry-failed" in printed
    manifest = check_outputs(out, [])
    small = next(f["fix"] for f in manifest["small"]["findings"] if f["check"] == "size")
    assert f"talkinghead-nb repair {folder / 'small.png'} small-repaired.png --fit && mv " in small
    assert cli.main(args) == 1  # a rerun: nothing new failed, but two characters still are
    assert "2 failed before (not retried)" in capsys.readouterr().out
    assert cli.main([*args, "--names", "glee"]) == 1
    assert "unknown emotion 'glee'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli.main(["serve", "--replicas", "2"])
    assert usage.value.code == 2 and "--replicas needs --ray" in capsys.readouterr().err


def test_names_that_clash_with_the_batch_files_are_refused(tmp_path):
    folder = make_characters(tmp_path / "in", good=1)
    for name in ("_batch.json.png", ".hidden.png"):
        (folder / name).write_bytes((folder / "crypko_00.png").read_bytes())
    out = tmp_path / "out"
    result = export_many([folder / "crypko_00.png", folder / "_batch.json.png", folder / ".hidden.png"], out,
                         names=NAMES, make_poser=CpuFakePoser, progress=False)
    assert result.rendered == ["crypko_00"] and sorted(result.failed) == [".hidden", "_batch.json"]
    manifest = json.loads((out / MANIFEST).read_text())["characters"]  # still a file, still the manifest
    finding = manifest["_batch.json"]["findings"][0]
    assert finding["check"] == "name" and "must not start with '_' or '.'" in finding["message"]
    assert finding["fix"] == "rename the file"
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "crypko_00"]


def test_a_second_run_into_the_same_folder_is_refused_and_a_dead_runs_lock_taken_over(tmp_path):
    folder = make_characters(tmp_path / "in", good=1)
    out = tmp_path / "out"
    out.mkdir()
    partial = out / ".crypko_00.partial-x"
    partial.mkdir()  # the running batch's folder being written
    with BatchLock(out), pytest.raises(RuntimeError, match=rf"another batch run \({socket.gethostname()}:"
                                                          rf"{os.getpid()}\) is writing into .*out: wait"):
        export_many(folder, out, names=NAMES, make_poser=CpuFakePoser, progress=False)
    assert partial.is_dir()

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(f"{socket.gethostname()}:{dead.pid}")  # a run that died
    result = export_many(folder, out, names=NAMES, make_poser=CpuFakePoser, progress=False)
    assert result.rendered == ["crypko_00"]
    assert not partial.exists() and not (out / LOCK).exists()  # the dead run's leftovers are gone, and our lock


def test_a_pool_holds_a_bounded_window_of_jobs(tmp_path, monkeypatch):
    """A large catalogue is not read up front: jobs are drawn as answers come back, at most 2 per worker ahead."""
    settings = BatchSettings(templates=EmotionLibrary().load(), names=NAMES, engine=EngineSpec(make_poser=CpuFakePoser))
    data = example_path("crypko_00").read_bytes()
    drawn, answered, ahead = [0], [0], []

    def jobs():
        for i in range(10):
            drawn[0] += 1
            yield Job(f"c{i}", "memory", data)

    monkeypatch.setattr(worker_module, "_worker", None)
    worker_module.start_process_worker(settings)
    with ThreadPoolExecutor(2) as pool:
        for answer in _windowed(pool, jobs(), window=4):
            assert answer["status"] == "done"
            answered[0] += 1
            ahead.append(drawn[0] - answered[0])
    assert answered[0] == 10 and max(ahead) <= 4


def test_in_process_the_allocator_is_tuned_only_when_asked(tmp_path, monkeypatch):
    """It is process-wide: the caller's choice (the command line passes True); worker processes are ours."""
    seen = []

    class Recorder(SpriteWorker):
        def __init__(self, settings):
            seen.append(settings.engine.tune_allocator)
            super().__init__(settings)

    monkeypatch.setattr(batch_module, "SpriteWorker", Recorder)
    folder = make_characters(tmp_path / "in", good=1)
    export_many(folder, tmp_path / "a", names=NAMES, make_poser=CpuFakePoser, progress=False)
    export_many(folder, tmp_path / "b", names=NAMES, make_poser=CpuFakePoser, progress=False, tune_allocator=True)
    assert seen == [False, True]


@pytest.fixture
def switch_often():
    """Threads switch every microsecond (instead of every 5 ms): more interleavings of the contenders' steps."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _contend(folder: Path, start: threading.Barrier, end: threading.Barrier, won: list[int]) -> None:
    """Take the batch lock at the same moment as the other contenders (``start``), and hold it, if won, until every
    contender has tried (``end``)."""
    start.wait()
    try:
        with BatchLock(folder):
            won.append(threading.get_ident())
            end.wait()
    except RuntimeError:
        end.wait()


def test_a_dead_runs_lock_is_taken_over_by_exactly_one_contender(tmp_path, switch_often):
    """A lock left by a run that died, and four runs starting at once, 300 times: each time exactly one goes on (each
    contender opens the lock file itself, as a process of its own would)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    contenders, winners = 4, []
    for trial in range(300):
        folder = tmp_path / f"{trial}"
        folder.mkdir()
        (folder / LOCK).write_text(f"{socket.gethostname()}:{dead.pid}")
        start, end, won = threading.Barrier(contenders), threading.Barrier(contenders), []
        threads = [threading.Thread(target=_contend, args=(folder, start, end, won)) for _ in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners.append(len(won))
        assert not (folder / LOCK).exists()  # the winner removed it
    assert {trial: n for trial, n in enumerate(winners) if n != 1} == {}


def test_a_killed_run_resumes_from_its_journal_and_a_line_cut_short_is_ignored(tmp_path):
    folder = make_characters(tmp_path / "in", good=6)
    out = tmp_path / "out"
    script = ("import functools, sys; from talkinghead_nb.cluster import export_many; "
              "from tests.cluster_fakes import CpuFakePoser; "
              "export_many(sys.argv[1], sys.argv[2], names=('neutral', 'joy'), progress=False, "
              "make_poser=functools.partial(CpuFakePoser, 0.5))")
    process = subprocess.Popen([sys.executable, "-c", script, str(folder), str(out)], cwd=Path(__file__).parent.parent,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300  # only stops a hung test
        while len(_recorded(out)) < 2 or b"\n" not in _read(out / JOURNAL):  # some results only in the journal
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # no clean-up: _batch.json is not brought up to date
        process.communicate()
    finally:
        process.kill()
    recorded = _recorded(out)
    todo = sorted({f"crypko_{i:02}" for i in range(6)} - set(recorded))
    assert len(recorded) >= 2 and todo, "killed midway"
    assert (out / JOURNAL).exists()
    with (out / JOURNAL).open("a") as journal:
        journal.write(json.dumps({"name": todo[0], "status": "done"})[:20])  # a line cut short by a crash
    (out / f".{MANIFEST}.killed.tmp").write_text('{"charac')  # a rewrite of _batch.json the kill cut short

    log = tmp_path / "renders.log"
    result = export_many(folder, out, names=NAMES, make_poser=functools.partial(CpuFakePoser, log=str(log)),
                         progress=False)
    assert sorted(result.skipped) == sorted(n for n, status in recorded.items() if status == "done")
    assert sorted(result.rendered) == todo and sorted(result.kept_failed + result.failed) == ["noalpha", "small"]
    assert len(log.read_text().splitlines()) == len(NAMES) * len(todo)  # nothing recorded was rendered again
    check_outputs(out, [f"crypko_{i:02}" for i in range(6)])
    assert not (out / JOURNAL).exists()  # folded into _batch.json


def _recorded(out: Path) -> dict[str, str]:
    """``{name: status}`` of what a run recorded: ``_batch.json``, then its journal's complete lines."""
    try:
        recorded = {n: e["status"] for n, e in json.loads((out / MANIFEST).read_text())["characters"].items()}
    except FileNotFoundError:
        recorded = {}
    lines = _read(out / JOURNAL).decode().split("\n")[:-1]
    return recorded | {(entry := json.loads(line))["name"]: entry["status"] for line in lines}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def test_a_damaged_journal_line_before_the_last_is_refused_with_the_fix(tmp_path):
    lines = [json.dumps({"name": "a", "status": "failed"}), "{not json", json.dumps({"name": "b", "status": "failed"})]
    (tmp_path / JOURNAL).write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path / JOURNAL))} is damaged at line 2 .*delete it"):
        Manifest(tmp_path)
    (tmp_path / JOURNAL).write_text("\n".join(lines[:1] + lines[2:] + lines[1:2]))  # the last one, cut short
    assert Manifest(tmp_path).characters == {"a": {"status": "failed"}, "b": {"status": "failed"}}
    assert json.loads((tmp_path / MANIFEST).read_text())["characters"].keys() == {"a", "b"}
    assert not (tmp_path / JOURNAL).exists()


def test_a_ray_run_quiets_only_the_warnings_about_what_is_as_it_should_be(monkeypatch):
    pytest.importorskip("ray")
    import logging

    from talkinghead_nb.cluster import ray_batch

    class Connected(Exception):
        """Stands in for the connection: the loggers are set by then."""

    def connect(address: str, engines: int):
        raise Connected

    monkeypatch.setattr(ray_batch, "connect", connect)
    for name in ray_batch.EXPECTED_WARNINGS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    with pytest.raises(Connected):
        next(ray_batch.run_on_ray([], 0, None, "local", 1, 60.0))
    token, progress = (logging.getLogger(name) for name in ray_batch.EXPECTED_WARNINGS)
    assert token.name.endswith("authentication_token_setup") and progress.name.endswith("progress")
    assert not token.isEnabledFor(logging.WARNING) and not progress.isEnabledFor(logging.WARNING)
    assert token.isEnabledFor(logging.ERROR) and logging.getLogger("ray.data").isEnabledFor(logging.WARNING)
