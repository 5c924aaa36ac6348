"""One call reports on a candidate character image: every rule THA3 needs and every common flaw, each finding
pass / warning / error with the fix in words, and the repair that does it (as a Python call, or as the command line
names it: :meth:`Report.text`)."""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..character import SIZE, CharacterError, find_character, open_image
from ..layout import FACE_BOX, describe
from . import analysis as A
from .analysis import DEFAULT_TEMPLATE, template_alpha
from .background import removed_background
from .fixes import REPAIRS
from .halo import Halo, find_halo
from .pixels import hex_colour

PASS, WARNING, ERROR = "pass", "warning", "error"
SEE_THROUGH_SHARE = 0.2   # semi-transparent share of the silhouette above which it looks see-through
HIDDEN_COLOUR_SHARE = 0.01
ALIGNMENT_PX = 16
_LEFT = "text-align:left;vertical-align:top"


def python_hint(repair: str) -> str:
    """A repair (a name in ``REPAIRS``) as the Python call that does it."""
    return f"prep.{REPAIRS[repair].__name__}(image)"


@dataclass(frozen=True)
class Finding:
    """One check's outcome. ``fix``: what to do, in words; ``repair``: the name (in ``REPAIRS``) of the repair that
    does it, if there is one."""

    check: str
    level: str
    message: str
    fix: str = ""
    repair: str | None = None

    def advice(self, hint: Callable[[str], str] = python_hint) -> str:
        """The repair (as ``hint`` writes it) and the fix in words, or an empty string."""
        return ", or ".join(part for part in (self.repair and hint(self.repair), self.fix) if part)


@dataclass
class Report:
    source: str
    findings: list[Finding] = field(default_factory=list)
    rgba: np.ndarray | None = None   # the image as RGBA when it could be read as one
    halo: Halo | None = None
    registration: A.Registration | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, check: str, level: str, message: str, fix: str = "", repair: str | None = None) -> None:
        self.findings.append(Finding(check, level, message, fix, repair))

    @property
    def summary(self) -> str:
        return f"{self.source}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"

    def text(self, hint: Callable[[str], str] = python_hint) -> str:
        """The report as aligned lines; ``hint`` writes a repair (the command line passes its own)."""
        lines = [self.summary]
        for f in self.findings:
            lines.append(f"  {f.level.upper():7} {f.check:12} {f.message}")
            if f.advice(hint):
                lines.append(f"  {'':7} {'':12} fix: {f.advice(hint)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        colours = {PASS: "#2e7d32", WARNING: "#b26a00", ERROR: "#c62828"}
        rows = "".join(_html_row("td", (f.level, f.check, f.message, f.advice()),
                                 f"color:{colours[f.level]};font-weight:bold") for f in self.findings)
        return (f"<b>{html.escape(self.summary)}</b><table>"
                f"{_html_row('th', ('level', 'check', 'finding', 'fix'))}{rows}</table>")


def _html_row(tag: str, texts: tuple[str, ...], first_style: str = "") -> str:
    """A table row, every cell left-aligned (Jupyter right-aligns them by default); ``first_style`` for the first."""
    styles = [";".join(filter(None, (_LEFT, first_style)))] + [_LEFT] * (len(texts) - 1)
    return "<tr>" + "".join(f"<{tag} style='{style}'>{html.escape(text)}</{tag}>"
                            for style, text in zip(styles, texts, strict=True)) + "</tr>"


def check_character(source: str | os.PathLike | bytes | Image.Image, *,
                    template: str | os.PathLike = DEFAULT_TEMPLATE) -> Report:
    """Everything worth knowing about ``source`` (a path, an example name, PNG bytes or a PIL image) as a THA3
    character. Never raises for a bad image: a file that cannot be used gives error findings."""
    label = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the image"
    report = Report(label)
    try:
        if isinstance(source, (str, os.PathLike)):
            source = find_character(source)
        image, label = open_image(source)
    except CharacterError as e:
        report.add("file", ERROR, str(e))
        return report
    report.source = label
    _check_file(report, image)
    rgba = _rgba(report, image)
    if rgba is None:
        return report
    report.rgba = rgba
    if not _check_alpha(report, rgba):
        return report
    _check_specks(report, rgba)
    _check_hidden_colour(report, rgba)
    _check_edges(report, rgba, removed_background(image))
    if rgba.shape[:2] == (SIZE, SIZE):
        _check_alignment(report, rgba, template)
    return report


def _check_file(report: Report, image: Image.Image) -> None:
    fmt = image.format
    if fmt == "PNG":
        report.add("format", PASS, "PNG")
    elif fmt is None:
        report.add("format", PASS, "an image in memory (prep.save_new writes it as PNG)")
    elif fmt == "JPEG":
        report.add("format", ERROR, "JPEG: it cannot hold an alpha channel",
                   "cut the character out and export it as a PNG with transparency")
    else:
        report.add("format", WARNING, f"{fmt}, not PNG", "export it as PNG (the rule THA3 tools expect)")
    width, height = image.size
    if (width, height) == (SIZE, SIZE):
        report.add("size", PASS, f"{SIZE}×{SIZE}")
    else:
        report.add("size", ERROR, f"{width}×{height}; THA3 needs exactly {SIZE}×{SIZE}",
                   f"crop or scale it to {SIZE}×{SIZE} in an image editor", repair="fit")


def _rgba(report: Report, image: Image.Image) -> np.ndarray | None:
    if image.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        report.add("alpha", PASS, f"mode {image.mode}: has an alpha channel")
    elif image.mode == "P" and "transparency" in image.info:
        report.add("alpha", WARNING, "palette PNG with a transparent colour: the alpha is only on/off, so the "
                   "silhouette's edges are jagged", "export as 32-bit RGBA (8-bit alpha) instead")
    elif "transparency" in image.info:
        report.add("alpha", WARNING, f"mode {image.mode} with one transparent colour: on/off alpha only",
                   "export as 32-bit RGBA")
    else:
        report.add("alpha", ERROR, f"no alpha channel (mode {image.mode}): THA3 treats every pixel with nonzero "
                   "alpha as the character", "on a plain background, remove it (or cut the character out with "
                   "rembg or an image editor) and export a PNG with transparency", repair="background")
        return None
    return np.asarray(image.convert("RGBA"))


def _check_alpha(report: Report, rgba: np.ndarray) -> bool:
    shares = A.alpha_shares(rgba)
    text = (f"{shares.transparent:.0%} transparent, {shares.semi_transparent:.1%} semi-transparent, "
            f"{shares.opaque:.0%} opaque")
    if shares.transparent == 1.0:
        report.add("coverage", ERROR, "fully transparent: there is no character",
                   "export the character layer, not only the empty background")
        return False
    if shares.transparent == 0.0:
        report.add("coverage", ERROR, f"{text}: no transparent background, so THA3 would animate the background "
                   "as part of the character", "on a plain background, remove it; else cut the character out and "
                   "export with transparency", repair="background")
        return False
    silhouette = shares.semi_transparent + shares.opaque
    if shares.semi_transparent > SEE_THROUGH_SHARE * silhouette:
        report.add("coverage", WARNING, f"{text}: {shares.semi_transparent / silhouette:.0%} of the character is "
                   "semi-transparent, so it will look see-through", "make the body fully opaque (alpha 255); "
                   "keep soft alpha only on the outline")
    else:
        report.add("coverage", PASS, text)
    return True


def _check_specks(report: Report, rgba: np.ndarray) -> None:
    specks = A.specks(rgba)
    if not specks:
        report.add("specks", PASS, "one connected silhouette (no stray specks)")
        return
    pixels, alpha = sum(s.pixels for s in specks), max(s.max_alpha for s in specks)
    report.add("specks", WARNING, f"{len(specks)} stray speck(s) away from the silhouette ({pixels} px, alpha up to "
               f"{alpha}): they float in place while the character moves", "erase them in an image editor",
               repair="specks")


def _check_hidden_colour(report: Report, rgba: np.ndarray) -> None:
    share = A.hidden_colour_share(rgba)
    if share > HIDDEN_COLOUR_SHARE:
        report.add("hidden", WARNING, f"{share:.0%} of the fully transparent pixels still carry colour (a "
                   "background under zero alpha); talkinghead-nb clears it on load, other tools may show it",
                   repair="hidden")
    else:
        report.add("hidden", PASS, "no colour under zero alpha")


def _check_edges(report: Report, rgba: np.ndarray, removed: tuple[int, int, int] | None) -> None:
    halo = report.halo = find_halo(rgba, removed)
    if not halo.found:
        report.add("edges", PASS, f"{halo.describe()}: no background colour left around the silhouette")
        return
    report.add("edges", WARNING, f"{halo.describe()}: background colour left by the cut-out; it shows over any "
               f"other background (estimated background colour {hex_colour(halo.colour)})",
               "erase it by hand (the edge figure shows where)", repair="edges")


def _check_alignment(report: Report, rgba: np.ndarray, template: str | os.PathLike) -> None:
    reg = report.registration = A.register(rgba[..., 3], template_alpha(template), scales=A.POSITION_ONLY)
    text = f"best overlay on the template without scaling: {reg.describe()}"
    if abs(reg.dx) <= ALIGNMENT_PX and abs(reg.dy) <= ALIGNMENT_PX:
        report.add("alignment", PASS, text)
    else:
        report.add("alignment", WARNING, f"{text}: the head is not where THA3 expects it (the face crop is "
                   f"{describe(FACE_BOX)})", "move it in an image editor", repair="fit")
