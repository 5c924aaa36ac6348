"""Synthetic cut-outs with known contamination, made from the example characters: the ground truth that calibrates
and tests the halo detector and background removal (``tests/test_prep_halo.py``, ``bench/prep.py``).

A halo is injected in several ways, so that the detector is not tuned to one: a ring of background colour behind
the silhouette (``ring``), a loose feathered mask cut from a render (``loose_matte``), soft edges mixed with the
background (``mixed_edges``), an opaque outline pulled toward the background (``opaque_rim``), a halo along the hair
only (``hair_halo``), each optionally with noise. Clean variants (colours shifted, mirrored, rescaled, rotated,
feathered with clean colours) are the negatives. Whether a case has a halo is decided from the truth, not from the
detector: :func:`visible_error` against the clean character's own colours; a case whose visible share lies close to
the line (``BORDERLINE``) is marked borderline, and the error rates leave it out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from scipy import ndimage

from ..character import example_path
from .analysis import OPAQUE
from .pixels import Colour, composite

CHARACTERS = ("lambda_00", "lambda_01", *(f"crypko_0{i}" for i in range(8)))
RENDER_SIZE = (512, 768)       # width, height: a Stable Diffusion render
VISIBLE = 0.1                  # a pixel's visible error (alpha × colour distance, 0–1) that counts as a halo pixel
VISIBLE_SHARE = 0.03           # ... along this share of the outline (at least VISIBLE_PIXELS) makes a visible halo
VISIBLE_PIXELS = 25
BORDERLINE = (0.015, 0.06)     # visible shares too close to VISIBLE_SHARE to call: left out of the error rates

Background = Colour | np.ndarray  # a colour (0–255) or an (H, W, 3) picture (0–255)


def example_rgba(name: str) -> np.ndarray:
    """An example character as an ``(512, 512, 4) uint8`` array."""
    return np.array(Image.open(example_path(name)).convert("RGBA"))


def gradient(size: tuple[int, int], top: Colour, bottom: Colour) -> np.ndarray:
    """A vertical gradient of ``size`` = (width, height), as ``(H, W, 3) float32`` (0–255)."""
    width, height = size
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(np.asarray(top, np.float32) * (1 - ramp) + np.asarray(bottom, np.float32) * ramp,
                           (height, width, 3)).copy()


def on_canvas(rgba: np.ndarray, size: tuple[int, int] = RENDER_SIZE) -> np.ndarray:
    """``rgba`` on a transparent canvas of ``size`` = (width, height), centred and at the bottom, as a render frames an
    upper body (the body runs off the bottom edge)."""
    width, height = size
    canvas = np.zeros((height, width, 4), np.uint8)
    top, left = height - rgba.shape[0], (width - rgba.shape[1]) // 2
    canvas[top:, left:left + rgba.shape[1]] = rgba
    return canvas


def render(rgba: np.ndarray, background: Background, size: tuple[int, int] = RENDER_SIZE) -> np.ndarray:
    """What a render of the character on ``background`` looks like: :func:`on_canvas`, composited, ``uint8`` RGB."""
    return composite(on_canvas(rgba, size), _picture(background, (size[1], size[0])) * 255)



RENDERS: dict[str, Background] = {
    "white": (255, 255, 255), "grey": (128, 128, 128), "green screen": (0, 177, 64),
    "blue gradient": gradient(RENDER_SIZE, (235, 242, 255), (170, 195, 235))}
"""The backgrounds that background removal is measured on (``bench/prep_background.py``, the tests)."""

PASTELS: dict[str, Background] = {
    "pastel pink": (246, 224, 234), "pale blue gradient": gradient(RENDER_SIZE, (235, 242, 255), (190, 210, 240))}
"""Pale backgrounds whose colour a loose cut leaves on hair tips (measured by :func:`fringe_share`)."""
PASTELS_HELD_OUT: dict[str, Background] = {"mint": (214, 240, 226), "peach gradient": gradient(
    RENDER_SIZE, (255, 236, 220), (240, 214, 200))}


def grainy(size: tuple[int, int], tint: Colour, level: float, seed: int = 0) -> np.ndarray:
    """A plain background of ``tint`` with a render's grain: Gaussian noise of ``level`` (of 255) per pixel, shared
    by the channels, plus a third of that in each channel; ``size`` = (width, height), ``(H, W, 3) float32``."""
    width, height = size
    rng = np.random.default_rng(seed)
    grain = rng.normal(0.0, level, (height, width, 1)) + rng.normal(0.0, level / 3, (height, width, 3))
    return np.clip(np.asarray(tint, np.float32) + grain, 0, 255).astype(np.float32)


@dataclass(frozen=True)
class GrainyPlan:
    """Characters whose light colours (near-white garments) are whitened by ``whiten`` (see :func:`lighter`), each
    rendered on off-white ``tints`` with grain of each of ``levels``."""

    characters: tuple[str, ...]
    tints: dict[str, Colour]
    levels: tuple[float, ...]
    whiten: float


def grainy_renders(plan: GrainyPlan) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Per case of ``plan``: a label, the true cut-out (on the render's canvas) and the render (``uint8`` RGB)."""
    for index, character in enumerate(plan.characters):
        rgba = lighter(example_rgba(character), plan.whiten)
        for tint_name, tint in plan.tints.items():
            for level in plan.levels:
                label = f"{character} whitened {plan.whiten} on {tint_name} grain {level:g}"
                yield label, on_canvas(rgba), render(rgba, grainy(RENDER_SIZE, tint, level, seed=index))


GRAINY = GrainyPlan(("lambda_00", "crypko_00", "crypko_02"),
                    {"off-white warm": (248, 246, 240), "off-white cool": (244, 246, 250)}, (2, 4, 6), 0.7)
GRAINY_HELD_OUT = GrainyPlan(("lambda_01", "crypko_03", "crypko_06"),
                             {"ivory": (250, 248, 238), "pale grey": (238, 238, 240)}, (3, 5), 0.85)

DEEP = 5  # px inside the opaque silhouette from which a transparent pixel is a hole: nearer, it is the edge's error
          # (background removal's matting band reaches 3 px in), which the alpha errors measure


def hole_share(truth: np.ndarray, cut: np.ndarray) -> float:
    """The share of the true character's opaque pixels at least DEEP px inside its silhouette that ``cut`` made
    (mostly) transparent (alpha < 0.5): holes."""
    inner = ndimage.binary_erosion(truth[..., 3] >= OPAQUE, iterations=DEEP)
    return float((inner & (cut[..., 3] < 128)).sum() / max(int(inner.sum()), 1))


def fringe_share(truth: np.ndarray, cut: np.ndarray, background: Background) -> float:
    """Soft pixels of ``cut`` (alpha 0.04 to opaque) that show the ``background`` colour (within 0.12) where the
    true character's own colour is something else (over 0.15 away), as a share of the outline's length: background
    left on the tips, which shows over a dark backdrop."""
    alpha = cut[..., 3]
    colour = cut[..., :3].astype(np.float32) / 255.0
    near = np.abs(colour - _picture(background, alpha.shape)).max(axis=-1) < 0.12
    foreign = np.abs(colour - foreground_colour(truth)).max(axis=-1) > 0.15
    return int((near & foreign & (alpha >= 10) & (alpha < OPAQUE)).sum()) / max(outline_length(truth), 1)


def alpha_errors(truth: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """Sum of absolute differences (SAD, in units of a fully opaque pixel) and mean squared error of two images'
    alpha (0–1): the usual matting errors."""
    difference = (truth[..., 3].astype(np.float64) - estimate[..., 3]) / 255.0
    return float(np.abs(difference).sum()), float(np.mean(difference ** 2))

# ---- the truth --------------------------------------------------------------------------------------------------

def foreground_colour(rgba: np.ndarray) -> np.ndarray:
    """The character's own colour everywhere (0–1): its colour where it is visible (alpha ≥ 0.05), else that of the
    nearest visible pixel."""
    visible = rgba[..., 3] >= 13
    _, (rows, columns) = ndimage.distance_transform_edt(~visible, return_indices=True)
    return rgba[rows, columns, :3].astype(np.float32) / 255.0


def visible_error(clean: np.ndarray, dirty: np.ndarray) -> np.ndarray:
    """How visible a contamination is at each pixel: alpha × the largest channel difference from the clean
    character's own colour (0–1). Over any background, the pixel shows at most this much of the wrong colour."""
    alpha = dirty[..., 3].astype(np.float32) / 255.0
    return alpha * np.abs(dirty[..., :3] / 255.0 - foreground_colour(clean)).max(axis=-1)


def outline_length(rgba: np.ndarray) -> int:
    """Opaque pixels that touch a non-opaque one: the silhouette's outline, in pixels."""
    solid = rgba[..., 3] >= OPAQUE
    return int((solid & ndimage.binary_dilation(~solid)).sum())


def visible_share(clean: np.ndarray, dirty: np.ndarray) -> float:
    """Pixels of ``dirty`` with ``VISIBLE`` error, as a share of the clean outline's length."""
    return int((visible_error(clean, dirty) >= VISIBLE).sum()) / max(outline_length(clean), 1)


def has_visible_halo(clean: np.ndarray, dirty: np.ndarray) -> bool:
    """Whether ``dirty`` shows a halo: ``VISIBLE`` error along ``VISIBLE_SHARE`` of the outline."""
    count = int((visible_error(clean, dirty) >= VISIBLE).sum())
    return count >= max(VISIBLE_PIXELS, VISIBLE_SHARE * outline_length(clean))


def is_borderline(share: float) -> bool:
    """Whether a visible share is too close to the line to call either way (a don't-care band)."""
    return BORDERLINE[0] <= share < BORDERLINE[1]


# ---- injections -------------------------------------------------------------------------------------------------

def _picture(background: Background, shape: tuple[int, int]) -> np.ndarray:
    """A background as ``(H, W, 3) float32`` (0–1)."""
    return np.broadcast_to(np.asarray(background, np.float32) / 255.0, (*shape, 3)).astype(np.float32)


def _split(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return rgba[..., 3].astype(np.float32) / 255.0, rgba[..., :3].astype(np.float32) / 255.0


def _join(alpha: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    rgb = np.where(alpha[..., None] > 0, rgb, 0.0)
    return np.round(np.clip(np.dstack([rgb, alpha]), 0.0, 1.0) * 255).astype(np.uint8)


def _behind(rgba: np.ndarray, layer_alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The character over a layer of ``colour`` with alpha ``layer_alpha`` (the background a loose mask kept)."""
    alpha, rgb = _split(rgba)
    under = layer_alpha * (1 - alpha)
    total = alpha + under
    mixed = (alpha[..., None] * rgb + under[..., None] * colour) / np.maximum(total, 1e-6)[..., None]
    return _join(total, mixed)


def _distance_out(rgba: np.ndarray) -> np.ndarray:
    """Distance (px) from the character's core (alpha ≥ 0.5)."""
    return ndimage.distance_transform_edt(rgba[..., 3] < 128)


def ring(rgba: np.ndarray, background: Background, width: float, alpha: float, fade: bool = False) -> np.ndarray:
    """A ring of background colour ``width`` px wide at ``alpha`` behind the silhouette (fading outward)."""
    distance = _distance_out(rgba)
    profile = np.clip((width + 1 - distance) / width, 0, 1) if fade else (distance <= width).astype(np.float32)
    return _behind(rgba, alpha * profile * (distance > 0), _picture(background, distance.shape))


def hair_halo(rgba: np.ndarray, background: Background, width: float, alpha: float, seed: int = 0) -> np.ndarray:
    """A halo along the top of the silhouette only (the hair), its width wandering between 1 and ``width`` px."""
    distance = _distance_out(rgba)
    rng = np.random.default_rng(seed)
    wander = ndimage.gaussian_filter(rng.standard_normal(distance.shape), 12)
    local = 1 + (width - 1) * np.clip(0.5 + wander / (2 * wander.std() + 1e-9), 0, 1)
    rows = np.flatnonzero(rgba[..., 3].max(axis=1) > 0)
    hair = np.arange(distance.shape[0])[:, None] < rows[0] + 0.4 * (rows[-1] - rows[0])
    layer = alpha * ((distance > 0) & (distance <= local) & hair)
    return _behind(rgba, layer, _picture(background, distance.shape))


def loose_matte(rgba: np.ndarray, background: Background, grow: float, soften: float) -> np.ndarray:
    """A cut-out from a render on ``background`` with a mask ``grow`` px too large, feathered by ``soften`` px."""
    alpha, rgb = _split(rgba)
    colour = _picture(background, alpha.shape)
    shown = alpha[..., None] * rgb + (1 - alpha[..., None]) * colour
    mask = (_distance_out(rgba) <= grow).astype(np.float32)
    matte = np.maximum(alpha, ndimage.gaussian_filter(mask, soften) if soften else mask)
    return _join(matte, np.where(matte[..., None] > 0, shown, rgb))


def mixed_edges(rgba: np.ndarray, background: Background, soften: float = 0.0) -> np.ndarray:
    """Soft edges whose colour is mixed with the background by their transparency (a matte that was never
    un-mixed); with ``soften`` the soft band is first widened by a blur of that many px."""
    alpha, _ = _split(rgba)
    if soften:
        alpha = np.where(alpha >= OPAQUE / 255, alpha, ndimage.gaussian_filter(alpha, soften))
    colour = _picture(background, alpha.shape)
    own = foreground_colour(rgba)
    return _join(alpha, alpha[..., None] * own + (1 - alpha[..., None]) * colour)


def opaque_rim(rgba: np.ndarray, background: Background, strength: float = 0.7) -> np.ndarray:
    """The outermost opaque ring pulled ``strength`` of the way toward the background, and the soft edges mixed."""
    mixed = mixed_edges(rgba, background)
    alpha, rgb = _split(mixed)
    solid = alpha >= OPAQUE / 255
    rim = solid & ndimage.binary_dilation(~solid)
    colour = _picture(background, alpha.shape)
    rgb[rim] = (1 - strength) * rgb[rim] + strength * colour[rim]
    return _join(alpha, rgb)


def noisy(make: Callable[..., np.ndarray], level: float = 8.0, seed: int = 0) -> Callable[..., np.ndarray]:
    """``make`` with Gaussian noise (``level`` of 255) on the colour and alpha of the pixels it changed."""
    def with_noise(rgba: np.ndarray, *args, **kwargs) -> np.ndarray:
        dirty = make(rgba, *args, **kwargs)
        changed = (dirty != rgba).any(axis=-1)
        noise = np.random.default_rng(seed).normal(0.0, level, dirty.shape)
        out = dirty.astype(np.float32)
        out[changed] += noise[changed]
        out[..., 3] = np.where(dirty[..., 3] > 0, np.clip(out[..., 3], 1, 255), 0)
        return np.round(np.clip(out, 0, 255)).astype(np.uint8)
    return with_noise


# ---- clean variants ---------------------------------------------------------------------------------------------

def _recolour(rgba: np.ndarray, change: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    alpha, rgb = _split(rgba)
    return _join(alpha, np.clip(change(rgb), 0, 1))


def hue_shift(rgba: np.ndarray, degrees: float) -> np.ndarray:
    """The character with every hue turned by ``degrees`` (blonde → green hair, and so on)."""
    def turn(rgb: np.ndarray) -> np.ndarray:
        hsv = rgb_to_hsv(rgb)
        hsv[..., 0] = (hsv[..., 0] + degrees / 360) % 1
        return hsv_to_rgb(hsv)
    return _recolour(rgba, turn)


def lighter(rgba: np.ndarray, amount: float = 0.7) -> np.ndarray:
    """Light colours lightened toward white (light hair, white clothes), dark line art kept dark."""
    luma = lambda rgb: (rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32))[..., None]  # noqa: E731
    return _recolour(rgba, lambda rgb: rgb + (1 - rgb) * amount * luma(rgb) ** 2)


def gamma(rgba: np.ndarray, power: float) -> np.ndarray:
    """Every colour to the ``power`` (< 1 lighter, > 1 darker)."""
    return _recolour(rgba, lambda rgb: rgb ** power)


def mirrored(rgba: np.ndarray) -> np.ndarray:
    return rgba[:, ::-1].copy()


def _premultiplied(rgba: np.ndarray, change: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    """A geometric change resampled with premultiplied alpha (no fringes: the colours stay clean)."""
    return np.array(change(Image.fromarray(rgba, "RGBA").convert("RGBa")).convert("RGBA"))


def rescaled(rgba: np.ndarray, factor: float) -> np.ndarray:
    """Scaled by ``factor`` about the centre of the canvas (Lanczos, premultiplied)."""
    height, width = rgba.shape[:2]
    size = (round(width * factor), round(height * factor))

    def scale(image: Image.Image) -> Image.Image:
        canvas = Image.new("RGBa", (width, height))
        canvas.paste(image.resize(size, Image.Resampling.LANCZOS), ((width - size[0]) // 2, (height - size[1]) // 2))
        return canvas
    return _premultiplied(rgba, scale)


def rotated(rgba: np.ndarray, degrees: float) -> np.ndarray:
    """Turned by ``degrees`` about the centre (bicubic, premultiplied)."""
    return _premultiplied(rgba, lambda image: image.rotate(degrees, Image.Resampling.BICUBIC))


def feathered(rgba: np.ndarray, soften: float = 0.8) -> np.ndarray:
    """Softer edges (the alpha blurred by ``soften`` px outside the opaque body), each soft pixel with the colour of
    the nearest pixel of the body (alpha ≥ 0.5): clean by construction."""
    alpha, rgb = _split(rgba)
    _, (rows, columns) = ndimage.distance_transform_edt(alpha < 0.5, return_indices=True)
    colour = np.where((alpha >= 0.5)[..., None], rgb, rgb[rows, columns])
    return _join(np.where(alpha >= OPAQUE / 255, alpha, ndimage.gaussian_filter(alpha, soften)), colour)


# ---- the corpus -------------------------------------------------------------------------------------------------

Change = Callable[[np.ndarray], np.ndarray]
Injection = Callable[[np.ndarray, Background], np.ndarray]


@dataclass(frozen=True)
class CorpusPlan:
    """Which characters, background colours, injections and clean variants make up a corpus."""

    characters: tuple[str, ...]
    colours: dict[str, Background]
    injections: dict[str, Injection]
    clean: dict[str, Change]
    repaint: dict[str, Change] = field(default_factory=dict)  # clean variants that also get every injection


@dataclass(frozen=True)
class Case:
    """One image of the corpus: ``halo`` is the truth (:func:`has_visible_halo`), ``colour`` the injected one;
    ``borderline``: the visible share lies in the don't-care band (:func:`is_borderline`)."""

    label: str
    character: str
    rgba: np.ndarray
    halo: bool
    colour: str | None = None
    injection: str | None = None
    borderline: bool = False


def cases(plan: CorpusPlan, stride: int = 1) -> Iterator[Case]:
    """Every case of ``plan`` (with ``stride``, every stride-th one; the others are not made): per character, its
    clean variants, then every injection over every colour (also on the ``repaint`` variants)."""
    index = -1
    for character in plan.characters:
        original = example_rgba(character)
        for name, change in plan.clean.items():
            index += 1
            if index % stride == 0:
                yield Case(f"{character} {name}", character, change(original), False)
        bases = {"": original} | {f" {name}": change(original) for name, change in plan.repaint.items()}
        for variant, base in bases.items():
            for colour_name, colour in plan.colours.items():
                for name, inject in plan.injections.items():
                    index += 1
                    if index % stride == 0:
                        yield _injected(f"{character}{variant} {name} {colour_name}", character, base, colour,
                                        colour_name, name, inject)


def _injected(label: str, character: str, base: np.ndarray, colour: Background, colour_name: str, name: str,
              inject: Injection) -> Case:
    dirty = inject(base, colour)
    return Case(label, character, dirty, has_visible_halo(base, dirty), colour_name, name,
                is_borderline(visible_share(base, dirty)))


def _size_free(make: Callable[..., np.ndarray], **kwargs) -> Injection:
    return lambda rgba, background: make(rgba, _sized(background, rgba.shape[:2]), **kwargs)


def _sized(background: Background, shape: tuple[int, int]) -> Background:
    """A picture background cut to ``shape`` (the bottom of a render, where the character sits)."""
    if np.ndim(background) == 3:
        return np.asarray(background)[-shape[0]:, :shape[1]]
    return background


_RENDER = (RENDER_SIZE[0], RENDER_SIZE[1])

CALIBRATION = CorpusPlan(
    characters=("lambda_00", "crypko_00", "crypko_01", "crypko_02", "crypko_04", "crypko_05", "crypko_07"),
    colours={"white": (255, 255, 255), "light grey": (205, 205, 205), "grey": (128, 128, 128),
             "green screen": (0, 177, 64), "pastel pink": (255, 205, 220), "pale blue gradient":
             gradient(_RENDER, (235, 242, 255), (190, 210, 240))},
    injections={
        "ring 1px a0.6": _size_free(ring, width=1, alpha=0.6),
        "ring 2px a0.35": _size_free(ring, width=2, alpha=0.35),
        "ring 3px a0.9 fading": _size_free(ring, width=3, alpha=0.9, fade=True),
        "loose matte 1px": _size_free(loose_matte, grow=1, soften=0.7),
        "loose matte 3px soft": _size_free(loose_matte, grow=3, soften=1.5),
        "mixed edges": _size_free(mixed_edges),
        "mixed edges widened": _size_free(mixed_edges, soften=1.0),
        "noisy ring 2px a0.5": _size_free(noisy(ring), width=2, alpha=0.5),
    },
    clean={"original": lambda rgba: rgba, "mirrored": mirrored, "hue +90°": lambda rgba: hue_shift(rgba, 90),
           "hue +200°": lambda rgba: hue_shift(rgba, 200), "lighter": lighter, "darker": lambda rgba: gamma(rgba, 1.6),
           "rescaled 0.85": lambda rgba: rescaled(rgba, 0.85), "rotated 6°": lambda rgba: rotated(rgba, 6),
           "feathered": feathered},
    repaint={"lighter": lighter},
)

HELD_OUT = CorpusPlan(
    characters=("lambda_01", "crypko_03", "crypko_06"),
    colours={"cream": (255, 243, 210), "blue screen": (0, 71, 187), "lavender": (200, 180, 255),
             "warm grey gradient": gradient(_RENDER, (225, 220, 210), (150, 145, 140))},
    injections={
        "hair halo up to 3px a0.7": _size_free(hair_halo, width=3, alpha=0.7),
        "opaque rim": _size_free(opaque_rim),
        "noisy loose matte 2px": _size_free(noisy(loose_matte, level=6, seed=1), grow=2, soften=1.0),
        "ring 1.5px a0.45 fading": _size_free(ring, width=1.5, alpha=0.45, fade=True),
        "mixed edges widened 1.5px": _size_free(mixed_edges, soften=1.5),
    },
    clean={"original": lambda rgba: rgba, "hue +300°": lambda rgba: hue_shift(rgba, 300),
           "gamma 0.7": lambda rgba: gamma(rgba, 0.7), "rotated -8°": lambda rgba: rotated(rgba, -8),
           "rescaled 1.1": lambda rgba: rescaled(rgba, 1.1), "lighter mirrored": lambda rgba: lighter(mirrored(rgba)),
           "feathered 1.2px": lambda rgba: feathered(rgba, 1.2)},
    repaint={"hue +120°": lambda rgba: hue_shift(rgba, 120)},
)
