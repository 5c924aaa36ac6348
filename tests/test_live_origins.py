"""Which web pages may drive the live server (issue 23): its own, those on this machine (SillyTavern's at
http://127.0.0.1:8000 among them) and the origins it is started with; any other site's page is refused server-side,
key or no key, and never gets ``Access-Control-Allow-Origin: *``. Clients that send no Origin (curl, Python, OBS, an
``<img>`` of the feed) work as before. Also: a forged Host header (DNS rebinding, redirects), and the API key read
from a file or the environment. Real servers over real HTTP, the stand-in renderer behind them."""

from __future__ import annotations

import http.client
import http.server
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from talkinghead_nb.live import LiveServer
from talkinghead_nb.live.http import API_KEY_ENV, parse_origins, resolve_api_key

from .fake_engine import FakePoser
from .local_http import serving

EVIL = "http://evil.example"
SILLYTAVERN = "http://127.0.0.1:8000"


def refused(answer: httpx.Response, *words: str) -> str:
    assert answer.status_code == 403, answer.text
    assert "access-control-allow-origin" not in answer.headers
    message = answer.json()["error"]
    for word in words:
        assert word in message, message
    return message


def session_ids(server: LiveServer) -> set[str]:
    return {session.id for session in server.all_sessions()}


def test_a_page_on_another_site_cannot_drive_a_keyless_server(fake_server):
    before = session_ids(fake_server)
    headers = {"Origin": EVIL}
    with httpx.Client(base_url=fake_server.url, timeout=30, headers=headers) as client:
        refused(client.post("/api/sessions"), "--allow-origin http://evil.example")
        refused(client.get("/api/sessions"), "--allow-origin")
        refused(client.post("/api/talkinghead/set_emotion", json={"emotion_name": "anger"}), "--allow-origin")
        refused(client.post("/api/talkinghead/record", json={"seconds": 1}), "--allow-origin")
        refused(client.get("/api/talkinghead/start_talking"), "--allow-origin")
        preflight = client.options("/api/sessions", headers={"Access-Control-Request-Method": "POST"})
        refused(preflight)
        refused(client.post("/api/sessions", headers={"Origin": "null"}), "opened from a file")  # file://, sandboxes
    assert session_ids(fake_server) == before
    assert fake_server.session().animator.emotion != "anger" and not fake_server.session().animator.talking


@pytest.mark.parametrize("origin", [SILLYTAVERN, "http://localhost:3000", "https://localhost", "http://[::1]:8000"])
def test_pages_on_this_machine_are_allowed_and_get_their_own_origin_back(fake_server, origin):
    with httpx.Client(base_url=fake_server.url, timeout=30, headers={"Origin": origin}) as client:
        answer = client.get("/api/classify/labels")
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == origin
        preflight = client.options("/api/talkinghead/set_emotion", headers={
            "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin


def test_clients_without_an_origin_and_img_tags_of_the_feed_keep_working(fake_server):
    answer = httpx.get(f"{fake_server.url}/api/modules", timeout=30)  # curl, Python, OBS
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    cross_site = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}  # what an <img> on another site sends
    with httpx.stream("GET", fake_server.feed_url(), headers=cross_site, timeout=30) as feed:
        assert feed.status_code == 200
        next(feed.iter_bytes())
    assert httpx.get(f"{fake_server.url}/", headers=cross_site, timeout=30).status_code == 200  # a link to the page
    # ... but an <img src=".../start_talking"> on that site does not change anything
    refused(httpx.get(f"{fake_server.url}/api/talkinghead/start_talking", headers=cross_site, timeout=30),
            "--allow-origin")
    assert not fake_server.session().animator.talking


def test_a_named_origin_is_allowed_in_addition_to_this_machines(character):
    other = "http://192.168.1.20:8000"  # SillyTavern on another machine
    with LiveServer(character, poser=FakePoser(), port=0, seed=0, allow_origins=[other + "/"]) as live:
        assert live.allow_origins == (other,)
        for origin in (other, SILLYTAVERN):
            answer = httpx.post(f"{live.url}/api/sessions", headers={"Origin": origin}, timeout=30)
            assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == origin
        refused(httpx.post(f"{live.url}/api/sessions", headers={"Origin": "http://192.168.1.21:8000"}, timeout=30))


def test_with_a_key_other_sites_are_still_refused_and_never_get_a_star(character):
    with LiveServer(character, poser=FakePoser(), port=0, seed=0, api_key="k3y") as live:
        key = {"Authorization": "Bearer k3y"}
        refused(httpx.get(f"{live.url}/api/sessions", headers={**key, "Origin": EVIL}, timeout=30), "--allow-origin")
        allowed = httpx.get(f"{live.url}/api/sessions", headers={**key, "Origin": SILLYTAVERN}, timeout=30)
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == SILLYTAVERN
        # the server's own pages, reached by any name (behind a proxy, say): Origin and Host agree
        own = httpx.post(f"{live.url}/api/sessions", timeout=30,
                         headers={**key, "Host": "talk.example", "Origin": "https://talk.example"})
        assert own.status_code == 200, own.text


@pytest.mark.parametrize("origin", ["*", "http://example.com/path", "ftp://example.com", "example.com", "http://"])
def test_a_bad_allowed_origin_is_refused_with_the_form_to_use(origin):
    with pytest.raises(ValueError, match="scheme://host|name the origins"):
        parse_origins([origin])


def test_default_ports_are_written_as_browsers_send_them():
    assert parse_origins(["HTTP://Example.com:80", "https://a.example:443/", "http://[::1]:8000"]) == (
        "http://example.com", "https://a.example", "http://[::1]:8000")


def raw_get(server: LiveServer, path: str, host: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", host)
    connection.endheaders()
    answer = connection.getresponse()
    answer.read()
    connection.close()
    return answer


def test_a_forged_host_gets_no_redirect_to_it(character):
    with LiveServer(character, poser=FakePoser(), port=0, seed=0, api_key="k3y") as live:  # pages are open
        page = raw_get(live, "/sessions/default/", "evil.example")
        assert page.status == 200 and page.getheader("Location") is None
        assert page.getheader("Content-Type").startswith("text/html")
        assert raw_get(live, "/api/modules/", "evil.example").getheader("Location") is None
        merged = raw_get(live, "/sessions/default//", "evil.example")  # repeated slashes: a relative 308
        assert merged.status == 308 and merged.getheader("Location") == "/sessions/default/"


def test_a_keyless_loopback_server_answers_only_to_loopback_names(fake_server):
    """DNS rebinding: a page at http://evil.example:<port>, its name pointed at 127.0.0.1, sends Host and Origin
    evil.example — the same origin as far as its browser knows."""
    answer = raw_get(fake_server, "/api/sessions", f"evil.example:{fake_server.port}")
    assert answer.status == 403
    forged = httpx.post(f"{fake_server.url}/api/sessions", timeout=30,
                        headers={"Host": f"evil.example:{fake_server.port}",
                                 "Origin": f"http://evil.example:{fake_server.port}"})
    refused(forged, "DNS rebinding", "--api-key")
    for host in (f"127.0.0.1:{fake_server.port}", f"localhost:{fake_server.port}", f"[::1]:{fake_server.port}",
                 "localhost"):
        assert raw_get(fake_server, "/api/modules", host).status == 200, host


@pytest.fixture
def page_server() -> Iterator[str]:
    """A page on another origin, http://127.0.0.2:<port>: not this machine's default-allowed names."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = b"<!doctype html><title>elsewhere</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    with serving(Quiet, "127.0.0.2") as url:
        yield url


FETCH = """async ([url, init]) => {
  try { const answer = await fetch(url, init); return {status: answer.status, body: await answer.text()}; }
  catch (error) { return {error: String(error)}; }
}"""


def test_in_chromium_a_page_elsewhere_is_refused_and_sillytaverns_origin_works(browser, fake_server, page_server):
    before = session_ids(fake_server)
    page = browser.new_page()
    page.goto(page_server + "/")
    hostile = page.evaluate(FETCH, [f"{fake_server.url}/api/sessions", {"method": "POST"}])
    assert "error" in hostile  # the browser gets no CORS header: the page cannot read anything ...
    assert session_ids(fake_server) == before  # ... and the server refused it, not only the browser
    listing = page.evaluate(FETCH, [f"{fake_server.url}/api/sessions", {}])
    assert "error" in listing
    page.close()
    with LiveServer(fake_server.character, poser=FakePoser(), port=0, seed=0, allow_origins=[page_server]) as live:
        page = browser.new_page()
        page.goto(page_server + "/")
        answer = page.evaluate(FETCH, [f"{live.url}/api/talkinghead/set_emotion", {
            "method": "POST", "headers": {"Content-Type": "application/json"},
            "body": '{"emotion_name": "joy"}'}])
        assert answer.get("status") == 200, answer
        assert live.session().animator.emotion == "joy"
        page.close()


def test_the_key_comes_from_the_argument_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert resolve_api_key() is None
    monkeypatch.setenv(API_KEY_ENV, " from-env \n")
    assert resolve_api_key() == "from-env"
    assert resolve_api_key("given") == "given"
    key_file = tmp_path / "key"
    key_file.write_text("  from-file  \nsecond line\n", encoding="utf-8")
    assert resolve_api_key(None, key_file) == "from-file"
    with pytest.raises(ValueError, match="not both"):
        resolve_api_key("given", key_file)


@pytest.mark.parametrize(("make", "words"), [
    (lambda folder: folder / "missing", "does not exist"),
    (lambda folder: folder, "cannot read the API key file"),
    (lambda folder: _written(folder / "empty", b"\n\nkey on line 3\n"), "no key on its first line"),
    (lambda folder: _written(folder / "binary", b"\xff\xfe\xfa"), "cannot read the API key file"),
])
def test_a_bad_key_file_is_named_with_the_fix(tmp_path, make, words):
    with pytest.raises(ValueError, match=words) as caught:
        resolve_api_key(None, make(tmp_path))
    assert "first line" in str(caught.value) or "--api-key-file" in str(caught.value)


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
