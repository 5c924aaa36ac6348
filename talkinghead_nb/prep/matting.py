"""The matting library, behind two calls: alpha from a trimap (closed-form matting) and the foreground colours
behind an alpha (multilevel foreground estimation), both from ``pymatting``. Imported on first use: numba compiles
on the first call of a session (its cache makes later sessions start fast)."""

from __future__ import annotations

import sys

import numpy as np

EPSILON = 1e-6      # closed-form matting's regularisation: smaller keeps finer strands, larger converges faster
MARGIN = 4          # px of known pixels kept around the unknown ones when cropping for the solver
CLEAR = 0.02        # a solved alpha this close to 0 (or 1) is made exactly 0 (or 1): solver noise, not coverage


class MattingUnavailable(RuntimeError):
    """pymatting is not installed."""


def _pymatting():
    """pymatting, imported on first use; the first time in a process it says that the first run may take a minute
    (numba compiles its solvers, unless numba's cache already holds them)."""
    if "pymatting" not in sys.modules:
        print("preparing background removal (first run: numba compiles, this may take a minute) …",
              file=sys.stderr, flush=True)
    try:
        import pymatting
    except ImportError as e:
        raise MattingUnavailable("background removal and edge decontamination need pymatting: "
                                 "pip install 'pymatting>=1.1.12'") from e
    return pymatting


def solve_alpha(rgb: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Alpha (0–1) for ``rgb`` (``(H, W, 3)``, 0–1) given a trimap (0 background, 1 foreground, 0.5 unknown), by
    closed-form matting, solved only on the bounding box of the unknown pixels."""
    unknown = (trimap > 0.1) & (trimap < 0.9)
    alpha = (trimap >= 0.9).astype(np.float64)
    if not unknown.any():
        return alpha
    rows, columns = np.nonzero(unknown)
    top, bottom = max(rows.min() - MARGIN, 0), min(rows.max() + MARGIN + 1, trimap.shape[0])
    left, right = max(columns.min() - MARGIN, 0), min(columns.max() + MARGIN + 1, trimap.shape[1])
    crop = trimap[top:bottom, left:right].astype(np.float64)
    if (crop >= 0.9).any() and (crop <= 0.1).any():
        solved = _pymatting().estimate_alpha_cf(np.ascontiguousarray(rgb[top:bottom, left:right], np.float64), crop,
                                                laplacian_kwargs={"epsilon": EPSILON})
        alpha[top:bottom, left:right] = solved
    return alpha


def foreground(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The foreground colours F (0–1) such that ``rgb`` = alpha F + (1 − alpha) B with smooth F and B (multilevel
    foreground estimation): the colours of soft pixels without the background mixed into them."""
    estimated = _pymatting().estimate_foreground_ml(np.asarray(rgb, np.float64), np.asarray(alpha, np.float64))
    return np.clip(estimated, 0.0, 1.0)


def snapped(alpha: np.ndarray) -> np.ndarray:
    """``alpha`` with solver noise near 0 and 1 removed (see CLEAR)."""
    return np.where(alpha < CLEAR, 0.0, np.where(alpha > 1 - CLEAR, 1.0, alpha))
