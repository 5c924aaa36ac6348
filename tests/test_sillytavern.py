"""Our SillyTavern extension (sillytavern/) in Chromium, and its installer.

There is no SillyTavern in CI: tests/sillytavern_host/ stands in for it. It is a small page of ours that offers the part
of SillyTavern's extension API the extension uses (``SillyTavern.getContext()`` with its chat, characters,
characterId, eventSource, eventTypes, extensionSettings and saveSettingsDebounced) and plays SillyTavern's events
in SillyTavern's order. It is served, with the installed extension and the characters' sprites, by a second local
HTTP server, so the extension's calls to our live server are cross-origin, as they are in reality. Our live server is
real (with the stand-in renderer of tests/fake_engine.py) and has an API key. bench/sillytavern.py runs the same flow
against a real SillyTavern.
"""

from __future__ import annotations

import http.server
import json
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from talkinghead_nb.character import example_path, load_character
from talkinghead_nb.live import LiveServer
from talkinghead_nb.sillytavern import EXTENSION_NAME, InstallError, extensions_folder, install_extension

from .fake_engine import FakePoser
from .local_http import serving

HOST_PAGE = Path(__file__).resolve().parent / "sillytavern_host"
KEY = "st-test-key-0123456789"
CHARACTERS = [{"name": "Crypko", "avatar": "Crypko.png"}, {"name": "Lambda", "avatar": "Lambda.png"},
              {"name": "Nobody", "avatar": "Nobody.png"}]  # Nobody has no talkinghead.png
DEADLINE_S = 30.0
CLONED_NAME = "SillyTavern-talkinghead-nb"  # SillyTavern's installer names the folder after the git repository


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> None:
    """Poll the server side until ``condition()`` holds (the page side uses Playwright's own waits)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def make_sillytavern(folder: Path) -> Path:
    """The bare skeleton install_extension checks for (server.js, public/scripts/extensions)."""
    (folder / "public" / "scripts" / "extensions").mkdir(parents=True)
    (folder / "server.js").write_text("// stand-in\n")
    return folder


# ---- the two servers -------------------------------------------------------------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    authorization: str
    origin: str


@dataclass
class Host:
    """The stand-in SillyTavern's HTTP server and every request it got."""
    url: str
    st_folder: Path
    requests: list[Seen] = field(default_factory=list)


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[Host]:
    st_folder = make_sillytavern(tmp_path_factory.mktemp("sillytavern"))
    install_extension(st_folder)
    characters = st_folder / "data" / "default-user" / "characters"
    for name, example in (("Crypko", "crypko_00"), ("Lambda", "lambda_00")):
        (characters / name).mkdir(parents=True)
        (characters / name / "talkinghead.png").write_bytes(example_path(example).read_bytes())
    public = st_folder / "public"
    user_extensions = extensions_folder(st_folder)
    shutil.copytree(user_extensions / EXTENSION_NAME, user_extensions / CLONED_NAME)  # as "Install extension" names it
    host = Host(url="", st_folder=st_folder)
    types = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".json": "application/json",
             ".png": "image/png"}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            host.requests.append(Seen("GET", self.path, self.headers.get("Authorization", ""),
                                      self.headers.get("Origin", "")))
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            if path == "/":
                file = HOST_PAGE / "index.html"
            elif path.startswith("/host/"):
                file = HOST_PAGE / path.removeprefix("/host/")
            elif path.startswith("/characters/"):  # as SillyTavern serves the sprite folders
                file = characters / path.removeprefix("/characters/")
            elif path.startswith("/scripts/extensions/third-party/"):  # the user's extensions, then the global ones
                file = user_extensions / path.removeprefix("/scripts/extensions/third-party/")
                if not file.is_file():
                    file = public / path.lstrip("/")
            else:
                file = public / path.lstrip("/")
            file = file.resolve()
            if not file.is_file() or ".." in path:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", types.get(file.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

    with serving(Handler) as host.url:
        yield host


class Recorder:
    """Outermost ASGI layer of our server in these tests: notes each request's method, path, key and origin."""

    def __init__(self, app, seen: list[Seen]):
        self.app, self.seen = app, seen

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.seen.append(Seen(scope["method"], scope["path"], headers.get(b"authorization", b"").decode(),
                                  headers.get(b"origin", b"").decode()))
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    """Our real live server, with a key and the stand-in renderer; ``live.seen`` lists the requests it got."""
    server = LiveServer(load_character(example_path("lambda_00")), poser=FakePoser(), port=0, seed=0, api_key=KEY)
    server.seen = []
    server.app.add_middleware(Recorder, seen=server.seen)
    with server:
        yield server


@pytest.fixture
def page(browser, host, live, request):
    """The stand-in SillyTavern with our extension loaded, settings pointing at our server (the extension off);
    ``@pytest.mark.parametrize("page", [folder], indirect=True)`` loads it from another folder."""
    folder = getattr(request, "param", EXTENSION_NAME)
    live.session().stop_talking()
    live.session().set_emotion("neutral")
    settings = {"talkinghead_nb": {"serverUrl": live.url, "apiKey": KEY, "enabled": False}}
    query = urllib.parse.urlencode({"characters": json.dumps(CHARACTERS), "settings": json.dumps(settings)})
    page = browser.new_page(viewport={"width": 900, "height": 800})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{host.url}/?{query}")
    page.wait_for_function("window.hostReady === true", timeout=30_000)
    manifest = page.evaluate(f"host.loadExtension('{folder}')")
    assert manifest["js"] == "index.js"
    page.locator("#talkinghead_nb_enabled").wait_for(timeout=30_000)
    yield page
    page.close()
    assert not problems, problems


def switch_on(page) -> None:
    page.locator("#talkinghead_nb_enabled").check()


def open_chat(page, index: int, state: str = "showing") -> None:
    """Open a character's chat and wait for the extension to show it (or to be ``state``)."""
    page.evaluate(f"host.openChat({index})")
    character = CHARACTERS[index]["name"] if state == "showing" else ""
    page.wait_for_function(f"(d => d.state === '{state}' && (d.character || '') === '{character}')"
                           "(document.getElementById('talkinghead_nb_settings').dataset)", timeout=30_000)


def feed_shows(page) -> None:
    page.wait_for_function("document.getElementById('talkinghead_nb_feed')?.naturalWidth === 512", timeout=30_000)


def canned_classifier(page, labels: list[tuple[str, float]], calls: list[str]) -> None:
    """Answer the page's /api/classify with these labels (worst first, to check the extension picks the best)."""
    def answer(route):
        calls.append(json.loads(route.request.post_data)["text"])
        body = {"classification": [{"label": label, "score": score} for label, score in labels]}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body),
                      headers={"Access-Control-Allow-Origin": "*"})
    page.route("**/api/classify", answer)


# ---- the extension in the browser ------------------------------------------------------------------------------

def test_the_settings_panel_renders_and_saves(page, live):
    assert page.locator("#talkinghead_nb_url").input_value() == live.url
    assert page.locator("#talkinghead_nb_key").input_value() == KEY
    assert page.locator("#talkinghead_nb_placement").input_value() == "panel"
    assert "off" in page.locator("#talkinghead_nb_status").inner_text()
    page.fill("#talkinghead_nb_voice", "en-gb")
    page.locator("#talkinghead_nb_voice").dispatch_event("change")
    assert page.evaluate("SillyTavern.getContext().extensionSettings.talkinghead_nb.voice") == "en-gb"
    assert page.evaluate("host.st.saves") >= 1
    page.locator("#talkinghead_nb_test").click()
    page.wait_for_function("document.getElementById('talkinghead_nb_status').textContent.startsWith('connected')",
                           timeout=30_000)


@pytest.mark.parametrize("page", [CLONED_NAME], indirect=True)
def test_the_extension_works_from_a_folder_of_another_name(page, live):
    switch_on(page)
    open_chat(page, 0)
    feed_shows(page)


def test_a_chat_loads_its_character_and_the_feed_shows_where_asked(page, live, artifacts):
    switch_on(page)
    open_chat(page, 0)
    feed_shows(page)
    assert np.array_equal(live.session().character.rgba, load_character(example_path("crypko_00")).rgba)
    assert not live.session().pump.paused
    assert page.locator("#talkinghead_nb_panel #talkinghead_nb_feed").is_visible()
    page.screenshot(path=str(artifacts / "sillytavern-panel.png"))

    page.select_option("#talkinghead_nb_placement", "sprite")  # in place of the expression sprite
    page.locator("#expression-holder #talkinghead_nb_feed").wait_for(timeout=30_000)
    assert not page.locator("#expression-image").is_visible()
    assert not page.locator("#talkinghead_nb_panel").is_visible()
    feed_shows(page)

    open_chat(page, 1)  # another character
    wait_until(lambda: np.array_equal(live.session().character.rgba,
                                      load_character(example_path("lambda_00")).rgba), "Lambda on the server")
    open_chat(page, 2, state="off")  # no talkinghead.png: paused, hidden, and the status says why
    assert "no talkinghead.png" in page.locator("#talkinghead_nb_status").inner_text()
    assert page.locator("#talkinghead_nb_feed").count() == 0
    assert page.locator("#expression-image").count() == 1
    wait_until(lambda: live.session().pump.paused, "the animation paused")

    open_chat(page, 0)
    page.evaluate("host.closeChat()")  # back to the welcome screen
    page.wait_for_function("document.getElementById('talkinghead_nb_settings').dataset.state === 'off'",
                           timeout=30_000)
    wait_until(lambda: live.session().pump.paused, "the animation paused")

    open_chat(page, 0)
    page.locator("#talkinghead_nb_enabled").uncheck()  # switched off: unloaded, feed closed
    page.wait_for_function("document.getElementById('talkinghead_nb_status').textContent === 'switched off'",
                           timeout=30_000)
    assert page.locator("#talkinghead_nb_feed").count() == 0
    wait_until(lambda: live.session().pump.paused, "the animation paused")


def test_the_panel_moves_and_remembers_where(page):
    switch_on(page)
    open_chat(page, 0)
    feed_shows(page)  # the panel has its size (it grows up from the bottom as the feed arrives)
    grip = page.locator("#talkinghead_nb_panel .talkinghead-nb-grip")
    box = grip.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(120, 140, steps=5)
    page.mouse.up()
    saved = page.evaluate("SillyTavern.getContext().extensionSettings.talkinghead_nb.panel")
    assert saved is not None and abs(saved["top"] - 140 + box["height"] / 2) < 3
    assert page.locator("#talkinghead_nb_panel").bounding_box()["y"] == pytest.approx(saved["top"], abs=1)


def test_a_wrong_key_and_a_group_chat_are_explained(page, live):
    page.fill("#talkinghead_nb_key", "wrong")
    page.locator("#talkinghead_nb_key").dispatch_event("change")
    page.locator("#talkinghead_nb_test").click()
    page.wait_for_function("document.getElementById('talkinghead_nb_status').textContent.includes('check the API "
                           "key')", timeout=30_000)
    page.fill("#talkinghead_nb_key", "")  # no key: no Authorization header at all
    page.locator("#talkinghead_nb_key").dispatch_event("change")
    live.seen.clear()
    page.locator("#talkinghead_nb_test").click()
    wait_until(lambda: any(s.path == "/api/talkinghead/emotions" for s in live.seen), "the connection test")
    assert [s.authorization for s in live.seen if s.path == "/api/talkinghead/emotions"] == [""]
    page.fill("#talkinghead_nb_key", KEY)
    page.locator("#talkinghead_nb_key").dispatch_event("change")
    switch_on(page)
    open_chat(page, 0)
    page.evaluate("host.st.groupId = 'g1'; SillyTavern.getContext().eventSource.emit('chat_id_changed', 'g1')")
    page.wait_for_function("document.getElementById('talkinghead_nb_status').textContent.startsWith('group chats')",
                           timeout=30_000)
    wait_until(lambda: live.session().pump.paused, "the animation paused")


def test_a_character_message_sets_the_best_emotion(page, live):
    calls: list[str] = []
    canned_classifier(page, [("sadness", 0.1), ("joy", 0.8), ("anger", 0.1)], calls)
    switch_on(page)
    open_chat(page, 0)
    page.evaluate("host.userSays('Hi!')")  # the user's messages are not classified
    page.evaluate("host.characterSays('*smiles* I am **so** glad you came!')")
    page.wait_for_function("document.getElementById('talkinghead_nb_emotion').textContent === 'joy'",
                           timeout=30_000)
    assert live.session().animator.emotion == "joy"
    assert calls == ["smiles I am so glad you came!"]  # once, though two events name the message; markup out


def test_a_character_message_sets_the_emotion_our_classifier_gives(page, live):
    """End to end with the server's own /api/classify (fails until that route is wired in routes.py)."""
    text = "This is wonderful, I am so happy and grateful!"
    answer = httpx.post(f"{live.url}/api/classify", json={"text": text}, headers={"Authorization": f"Bearer {KEY}"},
                        timeout=60)
    assert answer.status_code == 200, f"/api/classify is not wired yet: {answer.status_code} {answer.text[:200]}"
    best = max(answer.json()["classification"], key=lambda label: label["score"])["label"]
    if best == "neutral":
        live.session().set_emotion("surprise")  # so that a change is visible
    switch_on(page)
    open_chat(page, 0)
    page.evaluate(f"host.characterSays({json.dumps(text)})")
    page.wait_for_function(f"document.getElementById('talkinghead_nb_emotion').textContent === '{best}'",
                           timeout=60_000)
    assert live.session().animator.emotion == best
    assert any(s.path == "/api/talkinghead/set_emotion" for s in live.seen)


def test_without_classify_the_extension_says_so_and_goes_on(page, live):
    page.route("**/api/classify", lambda route: route.fulfill(
        status=404, content_type="application/json", body='{"error": "not found"}',
        headers={"Access-Control-Allow-Origin": "*"}))  # an older server
    switch_on(page)
    open_chat(page, 0)
    page.evaluate("host.characterSays('Hello there.')")
    page.wait_for_function("document.getElementById('talkinghead_nb_settings').dataset.classify === 'missing'",
                           timeout=30_000)
    assert "no /api/classify" in page.locator("#talkinghead_nb_status").inner_text()
    assert live.session().animator.emotion == "neutral"
    page.evaluate("host.streamTokens(['Still', ' ', 'here'])")  # the rest works
    wait_until(lambda: live.session().animator.talking, "talking")


def test_a_streamed_reply_talks_until_it_ends(page, live):
    canned_classifier(page, [("curiosity", 0.9)], [])
    switch_on(page)
    open_chat(page, 0)
    before = sum(s.path.endswith("/start_talking") for s in live.seen)
    text = page.evaluate("host.streamTokens(['Well', ',', ' let', ' me', ' think', '...'])")
    wait_until(lambda: live.session().animator.talking, "talking while the reply streams")
    assert sum(s.path.endswith("/start_talking") for s in live.seen) == before + 1  # once, not once a token
    page.evaluate(f"host.endStream({json.dumps(text)})")
    wait_until(lambda: not live.session().animator.talking, "silence after the reply")
    page.wait_for_function("document.getElementById('talkinghead_nb_emotion').textContent === 'curiosity'",
                           timeout=30_000)
    page.evaluate("host.streamTokens(['Hm'])")  # a stopped generation stops talking too
    wait_until(lambda: live.session().animator.talking, "talking again")
    page.evaluate("SillyTavern.getContext().eventSource.emit('generation_stopped')")
    wait_until(lambda: not live.session().animator.talking, "silence after a stop")


def test_the_key_goes_only_to_the_server_url(page, live, host):
    canned_classifier(page, [("joy", 0.9)], [])
    live.seen.clear()
    host.requests.clear()
    switch_on(page)
    open_chat(page, 0)
    feed_shows(page)
    page.evaluate("host.characterSays('Great!')")
    page.wait_for_function("document.getElementById('talkinghead_nb_emotion').textContent === 'joy'",
                           timeout=30_000)
    page.evaluate("host.streamTokens(['a'])")
    wait_until(lambda: live.session().animator.talking, "talking")
    # SillyTavern's own origin: the sprite was fetched from it, never with the key
    assert any(r.path == "/characters/Crypko/talkinghead.png" for r in host.requests)
    assert all(r.authorization == "" and KEY not in r.path for r in host.requests)
    # ours: every request but the feed (an <img>) and the CORS preflights carries it, from the host's origin
    calls = [s for s in live.seen if s.method != "OPTIONS" and not s.path.endswith("/result_feed")]
    assert {s.path for s in calls} >= {"/api/talkinghead/load", "/api/talkinghead/set_emotion",
                                       "/api/talkinghead/start_talking"}
    assert all(s.authorization == f"Bearer {KEY}" and s.origin == host.url for s in calls)
    assert all(KEY not in s.path for s in live.seen)

    page.fill("#talkinghead_nb_url", host.url)  # SillyTavern's own address: refused, nothing sent there
    host.requests.clear()
    page.locator("#talkinghead_nb_url").dispatch_event("change")
    page.wait_for_function("document.getElementById('talkinghead_nb_status').textContent.includes(\"own address\")",
                           timeout=30_000)
    assert all(r.authorization == "" for r in host.requests)


def test_replies_are_spoken_with_the_mouth_in_sync(page, live):
    from talkinghead_nb.speech import available
    if not available():
        pytest.skip("eSpeak NG is not installed (the speech extra)")
    canned_classifier(page, [("joy", 0.9)], [])
    page.locator("#talkinghead_nb_speak").check()
    page.locator("body").click()  # a user gesture, as in SillyTavern: the page may play sound
    switch_on(page)
    open_chat(page, 0)
    page.evaluate("host.characterSays('Hello! It is so nice to see you again.')")
    wait_until(lambda: live.session().stats()["speaking"], "the mouth following the speech")
    page.wait_for_function("['playing', 'ended'].includes(document.getElementById('talkinghead_nb_settings')"
                           ".dataset.audio)", timeout=30_000)
    root = page.locator("#talkinghead_nb_settings")
    ready, late = float(root.get_attribute("data-ready")), float(root.get_attribute("data-late"))
    print(f"answer to sound scheduled: {ready * 1000:.0f} ms of the 250 ms delay; sound after the mouth: "
          f"{late * 1000:.0f} ms")
    assert late == 0  # decoded within the delay: the sound starts with the mouth
    assert any(s.path == "/api/talkinghead/speak" and s.authorization == f"Bearer {KEY}" for s in live.seen)
    page.locator("#talkinghead_nb_speak").uncheck()


# ---- the installer ---------------------------------------------------------------------------------------------

def test_install_copies_the_extension_and_says_so(tmp_path):
    st = make_sillytavern(tmp_path / "SillyTavern")
    said: list[str] = []
    target = install_extension(st, say=said.append)
    assert target == st / "data" / "default-user" / "extensions" / EXTENSION_NAME  # where SillyTavern 1.12 looks
    assert {p.name for p in target.iterdir()} >= {"manifest.json", "index.js", "style.css", "settings.html"}
    assert json.loads((target / "manifest.json").read_text())["js"] == "index.js"
    assert said and "installed" in said[0] and str(target) in said[0]
    assert [p.name for p in target.parent.iterdir()] == [EXTENSION_NAME]  # no scratch folder left

    said.clear()
    assert install_extension(st, say=said.append) == target  # the same again: nothing to do
    assert "up to date" in said[0]


def test_install_refuses_another_version_unless_asked(tmp_path):
    st = make_sillytavern(tmp_path / "SillyTavern")
    target = install_extension(st)
    (target / "index.js").write_text("// changed by hand\n")
    with pytest.raises(InstallError, match="overwrite"):
        install_extension(st)
    assert (target / "index.js").read_text() == "// changed by hand\n"
    said: list[str] = []
    install_extension(st, overwrite=True, say=said.append)
    assert (target / "index.js").read_text() != "// changed by hand\n"
    assert "replaced" in said[0]
    assert [p.name for p in target.parent.iterdir()] == [EXTENSION_NAME]


def test_install_refuses_a_folder_that_is_not_a_sillytavern(tmp_path):
    with pytest.raises(InstallError, match="not a folder"):
        install_extension(tmp_path / "nowhere")
    (tmp_path / "public" / "scripts" / "extensions").mkdir(parents=True)
    with pytest.raises(InstallError, match="not a SillyTavern folder"):
        install_extension(tmp_path)  # no server.js
    assert not (tmp_path / "data").exists()
    with pytest.raises(InstallError, match="user handle"):
        install_extension(make_sillytavern(tmp_path / "st"), user="../other")


def test_install_for_all_users_or_another_user_or_data_root(tmp_path):
    st = make_sillytavern(tmp_path / "SillyTavern")
    assert install_extension(st, for_all_users=True) == (st / "public" / "scripts" / "extensions" / "third-party"
                                                         / EXTENSION_NAME)  # releases after 1.12.6
    assert install_extension(st, user="alice") == st / "data" / "alice" / "extensions" / EXTENSION_NAME
    (st / "config.yaml").write_text("listen: false\ndataRoot: \"../st-data\"  # elsewhere\nport: 8000\n")
    assert install_extension(st) == tmp_path / "st-data" / "default-user" / "extensions" / EXTENSION_NAME


def test_install_refuses_a_file_in_the_way_and_a_missing_extension(tmp_path, monkeypatch):
    st = make_sillytavern(tmp_path / "SillyTavern")
    third_party = st / "data" / "default-user" / "extensions"
    third_party.mkdir(parents=True)
    (third_party / EXTENSION_NAME).write_text("not a folder")
    with pytest.raises(InstallError, match="not a folder of ours"):
        install_extension(st)
    monkeypatch.setenv("TALKINGHEAD_NB_SILLYTAVERN", str(tmp_path / "empty"))
    with pytest.raises(InstallError, match="cannot find the SillyTavern extension"):
        install_extension(make_sillytavern(tmp_path / "other"))
