"""The batched render scheduler: several characters in one forward pass, equal to their frames rendered alone;
many threads served by one pass; a live server whose sessions share it. (Its speed is a GPU matter:
bench/live_sessions.py.)"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from talkinghead_nb import pose as P
from talkinghead_nb.character import example_path, load_character
from talkinghead_nb.engine.scheduler import RenderScheduler
from talkinghead_nb.live import LiveServer

from .fake_engine import FakePoser
from .live_client import read_feed

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def characters(character):
    return [character, load_character(example_path("crypko_03"))]


def _poses(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(P.LOW, P.HIGH, (count, P.NUM_PARAMETERS)).astype(np.float32)


def test_a_batch_of_different_characters_equals_each_frame_alone(poser, characters):
    poses = _poses(3, seed=1)
    cast = [characters[0], characters[1], characters[0]]
    batch = poser.render_batch(cast, poses)
    assert batch.shape == (3, 4, 512, 512)
    for i, (who, pose) in enumerate(zip(cast, poses, strict=True)):
        alone = poser.render_tensor(who, pose)
        assert (batch[i:i + 1] - alone).abs().max().item() <= TOLERANCE


def test_render_batch_refuses_a_count_mismatch(poser, characters):
    with pytest.raises(ValueError, match="2 characters for 3 poses"):
        poser.render_batch(characters, _poses(3, seed=2))


def test_frames_asked_for_together_share_one_pass_and_are_exact(poser, characters):
    poses = _poses(4, seed=3)
    results: dict[int, torch.Tensor] = {}
    with RenderScheduler(poser, max_batch=4, gather_s=30.0) as scheduler:  # the 4th request completes the batch
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(
            i, scheduler.render(characters[i % 2], poses[i]))) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert scheduler.stats() == {"batches": 1, "frames": 4, "mean_batch": 4.0, "max_batch_seen": 4}
    for i in range(4):
        alone = poser.render_tensor(characters[i % 2], poses[i])
        assert (results[i] - alone).abs().max().item() <= TOLERANCE


def test_a_bad_frame_fails_alone_and_close_fails_the_waiting():
    character = load_character(example_path("crypko_00"))
    pose = np.zeros(P.NUM_PARAMETERS, np.float32)
    outcomes: dict[str, object] = {}

    def ask(label: str, who) -> None:
        try:
            outcomes[label] = scheduler.render(who, pose)
        except Exception as e:  # noqa: BLE001 — the outcome under test
            outcomes[label] = e

    scheduler = RenderScheduler(FakePoser(), max_batch=2, gather_s=30.0)  # both requests share one pass
    threads = [threading.Thread(target=ask, args=args) for args in (("good", character), ("bad", None))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes["good"].shape == (1, 4, 512, 512)  # its batch failed, but it was rendered again alone
    assert isinstance(outcomes["bad"], AttributeError)  # no character: only this frame fails
    assert scheduler.stats()["batches"] == 1
    scheduler.close()
    assert not scheduler._thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.render(character, pose)
    scheduler.start()  # open again (a server started after a stop)
    assert scheduler.render(character, pose).shape == (1, 4, 512, 512)
    scheduler.close()


def test_a_batching_server_serves_every_session_through_the_scheduler(character):
    renderer = FakePoser(seconds_per_frame=0.01)
    with LiveServer(character, poser=renderer, port=0, seed=0, batch_sessions=True) as server:
        other = server.new_session(load_character(example_path("crypko_03")))
        feeds = {}
        threads = [threading.Thread(target=lambda url=url: feeds.__setitem__(url, read_feed(url, 2.0)))
                   for url in (server.feed_url(), server.feed_url(other.id))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stats = other.stats()
        assert stats["batching"]["frames"] >= 20
        assert all(len(reading.parts) >= 20 for reading in feeds.values())
        assert stats["latency_ms"]["p50"] > 0
    assert not server.scheduler._thread.is_alive()
