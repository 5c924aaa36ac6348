"""Sprites for many characters on Ray Data, with a local Ray (no cluster needed): 6 characters (two broken) on 2
actors with the real engine, a run killed midway and resumed, and a run that cannot make progress saying so."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from talkinghead_nb.cluster import BatchStalled, export_many, ray_batch
from talkinghead_nb.cluster.manifest import MANIFEST
from talkinghead_nb.cluster.ray_batch import watched
from talkinghead_nb.cluster.ray_setup import RESERVED_CPUS, EnginePlan, connect, local_cpus

from .cluster_fakes import CpuFakePoser, ctrl_c_allowed
from .test_cluster_batch import NAMES, check_outputs, make_characters

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module, sized as ``--ray local`` sizes it for two engines."""
    connection = connect("local", engines=2)
    yield
    connection.close()


def test_local_ray_keeps_a_cpu_free_for_reads():
    """The measured deadlock: two actors under ray.init(num_cpus=2) on two cores hold every CPU."""
    assert local_cpus(2) == 2 * max(1, (os.cpu_count() or 1) // 2) + RESERVED_CPUS


def test_six_characters_two_broken_on_two_actors_with_the_real_engine(local_ray, tmp_path, monkeypatch):
    monkeypatch.setattr(ray_batch, "CHUNK_ROWS", 4)  # the dataset is built in two chunks, as a large one is
    folder = make_characters(tmp_path / "in")
    out = tmp_path / "out"
    result = export_many(folder, out, ray="local", workers=2, names=NAMES, device="cpu", offline=True,
                         progress=False)
    assert sorted(result.rendered) == [f"crypko_{i:02}" for i in range(4)]
    assert sorted(result.failed) == ["noalpha", "small"]
    manifest = check_outputs(out, result.rendered)
    assert len({entry["worker"] for entry in manifest.values()}) == 2  # both actors rendered


def test_a_cluster_too_small_for_the_workers_is_refused_before_anything_runs(local_ray, tmp_path):
    folder = make_characters(tmp_path / "in", good=1)
    with pytest.raises(RuntimeError, match=r"has \d+ CPU\(s\).*one kept free for Ray's own tasks.*fewer workers"):
        export_many(folder, tmp_path / "out", ray="auto", workers=8, names=NAMES, device="cpu", progress=False)
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_a_run_without_progress_says_so(local_ray):
    def never():
        time.sleep(3600)
        yield {}
    plan = EnginePlan(engines=2, cpus=1, gpus=0, threads=1)
    start = time.monotonic()
    with pytest.raises(BatchStalled, match=r"no character finished in 1 s.*2 engine\(s\) of 1 CPU each.*"
                                           r"run again \(finished characters are kept\)"):
        next(watched(never(), 1.0, plan))
    assert time.monotonic() - start < 60  # it did not wait for the hour


def test_a_driver_that_stops_reading_releases_the_rows():
    """A stall, Ctrl-C or a failed write ends the driver's loop: the reader thread must not stay blocked holding Ray
    Data's iterator (and its actors) on a Ray this run did not start."""
    released = threading.Event()

    def endless():
        try:
            while True:
                yield {"answer": b""}
        finally:
            released.set()
    rows = watched(endless(), 60.0, EnginePlan(engines=1, cpus=1, gpus=0, threads=1))
    next(rows)
    rows.close()
    assert released.wait(30), "the reader thread still holds the rows"


def test_a_killed_run_resumes_without_rendering_finished_characters(local_ray, tmp_path):
    folder = make_characters(tmp_path / "in", good=6)
    out = tmp_path / "out"
    address = ray.get_runtime_context().gcs_address  # the command joins this Ray as it would join a cluster
    command = [sys.executable, "-m", "talkinghead_nb.cli", "sprites-batch", str(folder), str(out), "--ray", address,
               "--workers", "2", "--names", "neutral,joy", "--device", "cpu", "--offline", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ctrl_c_allowed)
    try:
        deadline = time.monotonic() + 300  # only stops a hung test
        while not _done(out):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted (Ctrl-C)")
    finished = _done(out)
    assert 0 < len(finished) < 6, "killed midway"
    stamps = {p: p.stat().st_mtime_ns for name in finished for p in (out / name).iterdir()}

    log = tmp_path / "renders.log"
    result = export_many(folder, out, ray="local", workers=2, names=NAMES,
                         make_poser=functools.partial(CpuFakePoser, log=str(log)), progress=False)
    assert sorted(result.skipped) == sorted(finished)
    assert sorted(result.rendered) == sorted({f"crypko_{i:02}" for i in range(6)} - set(finished))
    assert len(log.read_text().splitlines()) == len(NAMES) * len(result.rendered)  # nothing finished was rendered again
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert len(_done(out)) == 6


def _done(out) -> list[str]:
    try:
        characters = json.loads((out / MANIFEST).read_text())["characters"]
    except FileNotFoundError:
        return []
    return [name for name, entry in characters.items() if entry["status"] == "done"]
