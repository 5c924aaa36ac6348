"""The halo detector: background colour left around a cut-out, for any background colour and any character.

Every soft pixel just outside the opaque silhouette (colour C, alpha a) is compared with the nearest opaque
foreground colour F. Background left by a loose mask shows in two ways: a *ring* of the background colour B itself
(C = B), and *soft edges mixed* with it by their transparency (C = a F + (1 − a) B). Each pixel therefore implies a
background colour, C or (C − a F) / (1 − a); a halo makes these agree on one B all around the silhouette, whatever
F is, while a clean outline's colours scatter. B is the densest colour of those votes, weighted by how visible each
deviation is; the pixels that fit it are the halo: a soft pixel fits as mixed when, unmixed from B, it has the same
own colour as a neighbour of another transparency unmixed the same way (one colour seen at two alphas). Dark
colours count only FAR px or more outside the opaque silhouette: nearer, dark line art at the outline looks exactly
like a black halo. Nor are the character's own colours at that place: those of the opaque pixels a few px deeper,
and, for a soft pixel, those of the opaque pixels right next to it (a drawn rim light's anti-aliased edge). Soft
pixels that merely continue, more transparent, a colour of the drawing next to them (a feathered edge) are not
counted. A halo is reported from SHARE of the outline: clean cut-outs keep a faint fringe of their render's
background along several per cent of it, which no one calls a halo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .analysis import OPAQUE
from .pixels import colour_name

REACH = 4.0          # px outside the opaque silhouette that are examined
MIN_ALPHA = 0.04     # softer pixels are invisible
MIX_ALPHA = 0.7      # above this alpha a soft pixel is no mixed edge: what it shows of B is small, and un-mixing
                     # it for the vote (÷ (1 − a)) only amplifies noise
NEUTRAL = 0.06       # chroma (distance from grey, 0–1) under which a colour counts as neutral
SAME_HUE = 0.7       # cosine between two chromas from which they point the same way (≈ 45°)
MIN_LUMA = 0.45      # a halo colour is at least this light (0–1) ...
VIVID = 0.5          # ... or this saturated (HSV) and bright: darker, duller colours look like line art
BINS = 32            # per channel, for the vote
FIT = 0.08           # how close (0–1, per channel) a pixel's implied background must be to B
VISIBLE = 0.1        # alpha × largest channel deviation from what the pixel should show (0–1) from which a halo
                     # pixel counts
SHARE = 0.09         # halo pixels, as a share of the outline's length (at least PIXELS), that make a halo: clean
                     # cut-outs already keep a faint fringe of their render's background along up to ~8 % of it
PIXELS = 25
BAND = 2             # px: the opaque outer band that is examined too (a hard mask leaves background there)
PALETTE = 6          # px: how far around a pixel the character's own colours are looked up
EDGE = 2             # px: a soft pixel the colour of an opaque pixel this near is the drawing's own soft edge
DENSER = 0.15        # alphas this far apart are another transparency: a feathered soft edge continues the colour
                     # of a pixel at least this much more opaque ...
FEATHER_STEPS = 2    # ... possibly through this many such steps outward
FOREIGN = 0.1        # how far (largest channel, 0–1) a halo colour is from all of them
FAR = 2.0            # px outside the opaque silhouette from which a grey or dark colour is no line art (a band
                     # that wide is halo)
SEED = 2.0           # px from the opaque silhouette within which a halo starts
BAND_PULL = 0.85     # how far from F toward B an opaque band pixel must be (rim light goes part of the way)
SAME_OWN = 0.1       # how close (largest channel, 0–1) two unmixed own colours must be to count as one
HEAD_LINE = 0.4      # the top 40 % of the silhouette is "the hair"
HEAD_SHARE = 0.6


@dataclass(frozen=True)
class Halo:
    """What :func:`find_halo` found. ``colour``: the estimated background colour (0–255; None when nothing points
    to one); ``share``: halo pixels per outline pixel; ``width``: halo pixels per outline pixel they touch (≈ px);
    ``ring_share``: the share of halo pixels that are the background colour itself (the rest: soft edges mixed
    with it); ``where``: "along the hair", "along the body" or "all around". ``mask``: the halo pixels; ``error``:
    every examined pixel's visible deviation (alpha × largest channel difference from what it should show, 0–1; NaN
    elsewhere), for heat maps. ``found``: the verdict."""

    found: bool
    colour: tuple[int, int, int] | None
    share: float
    width: float
    ring_share: float
    where: str
    mask: np.ndarray
    error: np.ndarray

    @property
    def colour_name(self) -> str:
        return colour_name(self.colour) if self.colour is not None else "none"

    def describe(self) -> str:
        """``a white halo of about 2 px along the hair (halo pixels: 40 % of the outline's length)``."""
        amount = f"halo pixels: {self.share:.0%} of the outline's length"
        if not self.found:
            suspect = f"; the likeliest colour, {self.colour_name}, fits {amount}" if self.colour else ""
            return f"no halo (reported from {SHARE:.0%}{suspect})"
        kind = "halo" if self.ring_share >= 0.5 else "fringe (soft edges mixed with it)"
        return f"a {self.colour_name} {kind} of about {max(1, round(self.width))} px {self.where} ({amount})"


@dataclass(frozen=True)
class _Rim:
    """The examined pixels (``where``): soft ones just outside the opaque silhouette and the opaque ones of its
    outer band. Per examined pixel: alpha, colour, the foreground colour it is compared with (0–1), and whether it
    is opaque. ``deep``: the colours of the opaque pixels deeper than the band (NaN elsewhere), the palette a halo
    colour must be foreign to. ``image``: the whole picture as RGB and alpha (0–1). ``nearest``: each pixel's
    nearest opaque pixel; ``outline``: the outer outline."""

    where: np.ndarray
    alpha: np.ndarray
    colour: np.ndarray
    foreground: np.ndarray
    opaque: np.ndarray
    far: np.ndarray
    deep: np.ndarray
    image: np.ndarray
    nearest: tuple[np.ndarray, np.ndarray]
    outline: np.ndarray


def _smoothed(rgb: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """The mean colour of ``mask``'s pixels near each of them (Gaussian ``sigma``); ``rgb`` elsewhere."""
    weight = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    mean = np.stack([ndimage.gaussian_filter(rgb[..., c] * mask, sigma) for c in range(3)], axis=-1)
    return np.where(mask[..., None], mean / np.maximum(weight, 1e-6)[..., None], rgb)


def _rim(rgba: np.ndarray) -> _Rim | None:
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) / 255.0
    solid = alpha >= OPAQUE / 255
    if not solid.any() or solid.all():
        return None
    to_clear = ndimage.distance_transform_edt(alpha >= MIN_ALPHA)
    near_clear = to_clear <= REACH
    edge = solid & ndimage.binary_dilation(~solid)
    outline = edge & (to_clear <= 2 * REACH)  # not the inner edges of a see-through body
    distance, nearest = ndimage.distance_transform_edt(~solid, return_indices=True)
    soft = ~solid & (alpha >= MIN_ALPHA) & (distance <= REACH) & near_clear
    deep = ndimage.binary_erosion(solid, iterations=BAND, border_value=1)
    depth, (rows, columns) = ndimage.distance_transform_edt(~deep, return_indices=True)
    band = solid & ~deep & near_clear & (depth <= 2 * BAND)
    foreground = np.where(soft[..., None], _smoothed(rgb, edge, 1.0)[nearest[0], nearest[1]],
                          _smoothed(rgb, deep, 1.5)[rows, columns])
    where = soft | band
    return _Rim(where, alpha[where], rgb[where], foreground[where], band[where], distance[where] >= FAR,
                np.where(deep[..., None], rgb, np.nan), np.dstack([rgb, alpha]), nearest, outline)


_DISK = [(dy, dx) for dy in range(-PALETTE, PALETTE + 1, 2) for dx in range(-PALETTE, PALETTE + 1, 2)
         if dy * dy + dx * dx <= PALETTE * PALETTE]  # every other pixel: the colours are smooth enough
_NEAR = [(dy, dx) for dy in range(-EDGE, EDGE + 1) for dx in range(-EDGE, EDGE + 1) if dy * dy + dx * dx <= EDGE ** 2]


def foreign(rim: _Rim, colours: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
    """How far each examined pixel's ``colours`` row is (largest channel, 0–1) from every deep foreground colour
    within PALETTE px and, for a soft pixel, from every opaque colour within EDGE px: a halo's colour is foreign to
    the character there, while a hair strand's, or the anti-aliased edge of a drawn rim light, is not. Only the
    pixels in ``which`` are measured (the others get 0)."""
    rows, columns = np.nonzero(rim.where)
    which = np.ones(len(rows), bool) if which is None else which
    rows, columns, colours = rows[which], columns[which], colours[which]
    height, width = rim.where.shape
    best = np.full(len(rows), np.inf, np.float32)
    for dy, dx in _DISK:
        palette = rim.deep[np.clip(rows + dy, 0, height - 1), np.clip(columns + dx, 0, width - 1)]
        best = np.fmin(best, np.abs(colours - palette).max(axis=1))
    soft = ~rim.opaque[which]
    for dy, dx in _NEAR:
        near = rim.image[np.clip(rows[soft] + dy, 0, height - 1), np.clip(columns[soft] + dx, 0, width - 1)]
        gap = np.where(near[:, 3] >= OPAQUE / 255, np.abs(colours[soft] - near[:, :3]).max(axis=1), np.inf)
        best[soft] = np.fmin(best[soft], gap)
    out = np.zeros(len(which), np.float32)
    out[which] = best
    return out


_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def is_drawn(colour: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Whether each colour looks like part of the drawing next to its foreground colour (rows of 0–1 RGB): a shade
    or tint of the same hue (line art, shading, highlights, rim light), or a darker grey next to a grey. A halo of
    such a colour cannot be told from the drawing, so it is not counted."""
    chroma = colour - colour.mean(axis=-1, keepdims=True)
    own = foreground - foreground.mean(axis=-1, keepdims=True)
    size, own_size = np.linalg.norm(chroma, axis=-1), np.linalg.norm(own, axis=-1)
    same_hue = (chroma * own).sum(axis=-1) >= SAME_HUE * size * own_size
    darker = colour @ _LUMA <= foreground @ _LUMA + 0.02
    neutral, own_neutral = size < NEUTRAL, own_size < 2 * NEUTRAL
    shade = darker & ((neutral & own_neutral) | (~neutral & ~own_neutral & same_hue))
    # A highlight keeps a trace of the hue (a blonde strand is a yellowish white); pure white does not.
    tint = ~darker & ~own_neutral & (size >= NEUTRAL / 4) & same_hue
    return shade | tint


def is_grey(colour: np.ndarray) -> np.ndarray:
    """Whether each colour (rows of 0–1 RGB) is a grey (white and black included)."""
    return np.linalg.norm(colour - colour.mean(axis=-1, keepdims=True), axis=-1) < NEUTRAL


def is_halo_colour(colour: np.ndarray) -> np.ndarray:
    """Whether each colour (rows of 0–1 RGB) could be a background's: light, or vivid (a green screen)."""
    value, low = colour.max(axis=-1), colour.min(axis=-1)
    saturation = (value - low) / np.maximum(value, 1e-6)
    return (colour @ _LUMA >= MIN_LUMA) | ((saturation >= VIVID) & (value >= VIVID))


def _votes(rim: _Rim) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's implied background colours, as a ring (C) and, for soft pixels, as a soft edge of colour F
    mixed with it ((C − a F) / (1 − a)), with a weight: how far the pixel is from F (faint soft pixels count too: at
    low alpha a mixed edge is nearly the background colour itself). Colours that a halo cannot have there are left
    out: dark ones, except FAR px or more outside the opaque silhouette, beyond any line art."""
    a = rim.alpha[:, None]
    unmixed = (rim.colour - a * rim.foreground) / np.maximum(1 - a, 1e-3)
    mixable = ~rim.opaque & (rim.alpha <= MIX_ALPHA) & (unmixed.min(axis=1) >= -FIT) & (unmixed.max(axis=1) <= 1 + FIT)
    unmixed = np.clip(unmixed, 0, 1)
    weight = np.sqrt(rim.alpha) * np.abs(rim.colour - rim.foreground).max(axis=1)
    votes, weights = [], []
    for implied, usable in ((rim.colour, weight > 0), (unmixed, mixable)):
        halo_colour = is_halo_colour(implied)
        beyond_line_art = rim.far & (is_grey(implied) | ~halo_colour)
        keep = usable & (halo_colour | rim.far) & (beyond_line_art | ~is_drawn(implied, rim.foreground))
        keep &= foreign(rim, implied, keep) >= FOREIGN
        votes.append(implied[keep])
        weights.append(weight[keep])
    return np.concatenate(votes), np.concatenate(weights)


def estimate_colour(rim: _Rim) -> np.ndarray | None:
    """The background colour (0–1) that most soft pixels point to (the highest peak of their votes), or None."""
    votes, weights = _votes(rim)
    if not len(votes) or weights.sum() <= 0:
        return None
    edges = np.linspace(0.0, 1.0, BINS + 1)
    histogram, _ = np.histogramdd(votes, bins=(edges,) * 3, weights=weights)
    histogram = ndimage.gaussian_filter(histogram, 0.8, mode="constant")
    peak = (np.array(np.unravel_index(np.argmax(histogram), histogram.shape)) + 0.5) / BINS
    near = np.abs(votes - peak).max(axis=1) <= 1.5 / BINS
    return np.median(votes[near], axis=0) if near.any() else peak


def _neighbours(rim: _Rim, colour: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per examined pixel, for the background ``colour`` B: its own colour L if it were a soft edge mixed with B
    (C = a L + (1 − a) B, so L = (C − (1 − a) B) / a); how far L is from the nearest own colour, unmixed the same
    way, of a neighbour within EDGE px whose alpha differs by DENSER or more and whose colour differs as mixing
    predicts (a mixed edge shows one own colour at several transparencies; a clean soft edge, unmixed, gives a
    different L at each; 8-bit rounding, divided by a, is allowed for); and the largest difference between B and
    the colour of a denser neighbour that is not B (a ring behind dark line art shows against the line, not against
    the fill the smoothed foreground leans to)."""
    rows, columns = np.nonzero(rim.where)
    height, width = rim.where.shape
    own = (rim.colour - (1 - rim.alpha[:, None]) * colour) / np.maximum(rim.alpha[:, None], 1e-3)
    gap = np.full(len(rows), np.inf, np.float32)
    contrast = np.zeros(len(rows), np.float32)
    for dy, dx in _NEAR:
        near = rim.image[np.clip(rows + dy, 0, height - 1), np.clip(columns + dx, 0, width - 1)]
        near_alpha = near[:, 3]
        near_own = (near[:, :3] - (1 - near_alpha[:, None]) * colour) / np.maximum(near_alpha[:, None], 1e-3)
        apart = (np.abs(near_alpha - rim.alpha) >= DENSER) & (near_alpha >= MIN_ALPHA)
        # Mixing changes the colour with the alpha, by |a − a'| × |L − B|: a pair of one colour is no mixed edge.
        predicted = np.abs(near_alpha - rim.alpha) * np.abs(np.clip(own, 0, 1) - colour).max(axis=1)
        apart &= np.abs(near[:, :3] - rim.colour).max(axis=1) >= predicted / 2
        rounding = 1 / (255 * np.maximum(np.minimum(rim.alpha, near_alpha), MIN_ALPHA))  # 8 bits, ÷ a
        gap = np.fmin(gap, np.where(apart, np.abs(own - near_own).max(axis=1) - rounding, np.inf))
        denser = (near_alpha >= rim.alpha + DENSER) & (np.abs(near[:, :3] - colour).max(axis=1) > FIT)
        contrast = np.maximum(contrast, np.where(denser, np.abs(colour - near[:, :3]).max(axis=1), 0.0))
    return own, gap, contrast


def _fits(rim: _Rim, colour: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which pixels the background ``colour`` B explains, how visible each is (alpha × the largest channel
    difference from what it should show, 0–1), and which are the background colour itself. A soft pixel is
    explained as a *ring* (its colour is B; it should show F or the line next to it) or as a *mixed soft edge* (see
    :func:`_neighbours`; its visible deviation a·|C − L| equals (1 − a)·|C − B|). An opaque pixel of the outer band is
    explained when its colour lies most of the way from F to B. Nowhere is B a shade of F or one of the character's
    own colours there."""
    as_ring = np.abs(rim.colour - colour).max(axis=1) <= FIT
    own, gap, contrast = _neighbours(rim, colour)
    inside = (own.min(axis=1) >= -FIT) & (own.max(axis=1) <= 1 + FIT)
    as_mixed = inside & (gap <= SAME_OWN) & (rim.alpha <= MIX_ALPHA) & ~as_ring
    span = colour - rim.foreground
    pull = ((rim.colour - rim.foreground) * span).sum(axis=1) / np.maximum((span * span).sum(axis=1), 1e-6)
    off = np.abs(rim.colour - rim.foreground - pull[:, None] * span).max(axis=1)
    as_band = (pull >= BAND_PULL) & (off <= FIT)
    visible = np.where(rim.opaque, np.minimum(pull, 1.0) * np.abs(span).max(axis=1),
                       np.where(as_ring, rim.alpha * np.maximum(np.abs(span).max(axis=1), contrast),
                                (1 - rim.alpha) * np.abs(colour - rim.colour).max(axis=1)))
    drawn = is_drawn(colour[None], rim.foreground) & ~(rim.far & is_grey(colour[None]))
    explained = np.where(rim.opaque, as_band, as_ring | as_mixed) & ~drawn
    explained &= foreign(rim, np.broadcast_to(colour, rim.colour.shape), explained) >= FOREIGN
    if not is_halo_colour(colour[None])[0]:
        explained &= rim.far  # a dark colour nearer the silhouette is line art as often as halo
    return explained, np.where(explained, visible, 0.0), as_ring | rim.opaque


def _feathered(rim: _Rim, explained: np.ndarray) -> np.ndarray:
    """Which soft pixels continue, more transparent, the colour of a denser pixel within EDGE px that the halo does
    not explain (the drawing's own edge, feathered). A loose mask continues the halo's colour instead, and a ring's
    outer pixels continue its inner ones, which the halo explains. Grown outward FEATHER_STEPS times."""
    height, width = rim.where.shape
    rows, columns = np.nonzero(rim.where)
    own = ~np.isnan(rim.deep[..., 0])
    own[rim.where] = ~explained
    soft = ~rim.opaque
    excused = np.zeros(len(rows), bool)
    for _ in range(FEATHER_STEPS):
        for dy, dx in _NEAR:
            r, c = np.clip(rows + dy, 0, height - 1), np.clip(columns + dx, 0, width - 1)
            near = rim.image[r, c]
            excused |= (soft & own[r, c] & (near[:, 3] >= rim.alpha + DENSER)
                        & (np.abs(near[:, :3] - rim.colour).max(axis=1) <= FIT))
        own[rows[excused], columns[excused]] = True
    return excused & explained


def find_halo(rgba: np.ndarray, background: tuple[int, int, int] | None = None) -> Halo:
    """Look for background colour left around the silhouette of ``rgba`` (``(H, W, 4) uint8``). ``background``:
    the colour (0–255) the image was cut from, when it is known (``prep.cut_out`` records it): then the halo is
    looked for in that colour rather than in the one the soft pixels vote for."""
    shape = rgba.shape[:2]
    error = np.full(shape, np.nan, np.float32)
    rim = _rim(rgba)
    if rim is None or not rim.where.any():
        colour = None
    else:
        colour = estimate_colour(rim) if background is None else np.asarray(background, np.float32) / 255
    if colour is None:
        return Halo(False, None, 0.0, 0.0, 0.0, "", np.zeros(shape, bool), error)
    explained, visible, as_ring = _fits(rim, colour)
    explained &= ~_feathered(rim, explained)
    visible = np.where(explained, visible, 0.0)
    error[rim.where] = visible
    halo_pixel = explained & (visible >= VISIBLE)
    mask = np.zeros(shape, bool)
    mask[rim.where] = halo_pixel
    # A halo grows out of the silhouette; colour that matches it further out, past the character's own soft
    # pixels (a pale hair strand), does not count.
    seeds = mask & (ndimage.distance_transform_edt(rgba[..., 3] < OPAQUE) <= SEED)
    mask = ndimage.binary_propagation(seeds, structure=np.ones((3, 3), bool), mask=mask)
    halo_pixel = mask[rim.where]
    count, length = int(mask.sum()), max(int(rim.outline.sum()), 1)
    rows, columns = rim.nearest
    touched = np.zeros(shape, bool)
    touched[rows[mask], columns[mask]] = True
    width = count / max(int(touched.sum()), 1)
    ring_share = float(as_ring[halo_pixel].mean()) if count else 0.0
    found = count >= max(PIXELS, SHARE * length)
    return Halo(found, tuple(int(round(c * 255)) for c in colour), count / length, width, ring_share,
                _where(mask, rim.outline, count / length), mask, error)


def _where(mask: np.ndarray, outline: np.ndarray, share: float) -> str:
    """Where the halo lies on the silhouette, in words."""
    rows = np.flatnonzero(outline.any(axis=1))
    if not len(rows):
        return "all around"
    line = rows[0] + HEAD_LINE * (rows[-1] - rows[0])
    halo_rows = np.nonzero(mask)[0]
    above = float((halo_rows < line).mean()) if len(halo_rows) else 0.0
    if above >= HEAD_SHARE:
        return "along the hair"
    return "all around" if share >= 0.5 else "along the body"
