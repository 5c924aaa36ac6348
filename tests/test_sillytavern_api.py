"""What SillyTavern 1.12's built-in talkinghead client (public/scripts/extensions/expressions/index.js) sends, that
the routes alone did not answer: its feed and talking URLs are built as ``extras URL + '/api/…'``, so an Extras URL
typed with a trailing slash (``http://127.0.0.1:5100/``) asks for ``//api/talkinghead/result_feed``. SillyTavern-Extras
(Flask) redirected such a path to the one with single slashes; so do we, to a relative ``Location``, and the guards
judge the redirected request as any other."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def idle(fake_server):
    """The fake server's default session, not talking, after the test too."""
    fake_server.session().stop_talking()
    yield fake_server
    fake_server.session().stop_talking()


def test_double_slash_command_is_redirected_to_the_route(idle):
    typed = f"{idle.url}/"  # the Extras URL with a trailing slash, as SillyTavern concatenates it
    answer = httpx.get(f"{typed}/api/talkinghead/start_talking?x=1", timeout=10)
    assert answer.status_code == 308, answer.text
    assert answer.headers["location"] == "/api/talkinghead/start_talking?x=1"
    followed = httpx.get(f"{typed}/api/talkinghead/start_talking", timeout=10, follow_redirects=True)
    assert followed.status_code == 200 and followed.json() == {"status": "ok"}
    assert idle.session().animator.talking


def test_double_slash_feed_streams_after_the_redirect(idle):
    with httpx.stream("GET", f"{idle.url}//api/talkinghead/result_feed", timeout=10, follow_redirects=True) as feed:
        assert feed.status_code == 200
        assert feed.headers["content-type"].startswith("multipart/x-mixed-replace")
        first = next(feed.iter_bytes())
    assert first.startswith(b"--frame")


def test_double_slash_does_not_get_past_the_cross_site_guard(idle):
    """A page on another site may not drive a command through ``//api/…`` (an <img> sends no Origin)."""
    answer = httpx.get(f"{idle.url}//api/talkinghead/start_talking", timeout=10, follow_redirects=True,
                       headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 403
    assert not idle.session().animator.talking


def test_double_slash_feed_needs_no_key_on_a_server_with_one(character):
    """The feed is open on a keyed server (an <img> cannot send headers): through ``//api/…`` too."""
    from talkinghead_nb.live import LiveServer

    from .fake_engine import FakePoser
    with LiveServer(character, poser=FakePoser(), port=0, seed=0, api_key="k3y") as keyed, httpx.stream(
            "GET", f"{keyed.url}//api/talkinghead/result_feed", timeout=10, follow_redirects=True) as feed:
        assert feed.status_code == 200
        assert next(feed.iter_bytes()).startswith(b"--frame")
