"""The 45 THA3 pose parameters: names, order, groups, ranges, left/right pairs, and conversions.

Everything else in the package takes its parameter facts from here. The JSON names are the ones the established
talkinghead emotion files use (``<group>_<side>_index``; ``mouth_delta`` and ``mouth_smirk`` carry no suffix).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch

from .messages import short_repr


class PoseError(ValueError):
    """A pose that the engine cannot use: unknown keys, non-finite or out-of-range values, wrong shape."""


class Category(str, Enum):
    EYEBROW = "eyebrow"
    EYE = "eye"
    IRIS_MORPH = "iris_morph"
    MOUTH = "mouth"
    IRIS_ROTATION = "iris_rotation"
    FACE_ROTATION = "face_rotation"
    BODY_ROTATION = "body_rotation"
    BREATHING = "breathing"

    @property
    def kind(self) -> str:
        """Coarse kind: ``morph``, ``iris_rotation``, ``head_body_rotation`` or ``breathing``."""
        if self in (Category.FACE_ROTATION, Category.BODY_ROTATION):
            return "head_body_rotation"
        if self in (Category.IRIS_ROTATION, Category.BREATHING):
            return self.value
        return "morph"


@dataclass(frozen=True)
class Parameter:
    key: str                  # JSON name, e.g. "eyebrow_troubled_left_index"
    index: int                # position in the 45-vector
    group: str                # e.g. "eyebrow_troubled"
    category: Category
    low: float
    high: float
    side: str | None = None   # "left" / "right" for paired parameters
    partner: str | None = None  # key of the mirrored parameter


# (group, category, paired, range); order is the network's input order.
_GROUPS: tuple[tuple[str, Category, bool, tuple[float, float]], ...] = (
    ("eyebrow_troubled", Category.EYEBROW, True, (0.0, 1.0)),
    ("eyebrow_angry", Category.EYEBROW, True, (0.0, 1.0)),
    ("eyebrow_lowered", Category.EYEBROW, True, (0.0, 1.0)),
    ("eyebrow_raised", Category.EYEBROW, True, (0.0, 1.0)),
    ("eyebrow_happy", Category.EYEBROW, True, (0.0, 1.0)),
    ("eyebrow_serious", Category.EYEBROW, True, (0.0, 1.0)),
    ("eye_wink", Category.EYE, True, (0.0, 1.0)),
    ("eye_happy_wink", Category.EYE, True, (0.0, 1.0)),
    ("eye_surprised", Category.EYE, True, (0.0, 1.0)),
    ("eye_relaxed", Category.EYE, True, (0.0, 1.0)),
    ("eye_unimpressed", Category.EYE, True, (0.0, 1.0)),
    ("eye_raised_lower_eyelid", Category.EYE, True, (0.0, 1.0)),
    ("iris_small", Category.IRIS_MORPH, True, (0.0, 1.0)),
    ("mouth_aaa", Category.MOUTH, False, (0.0, 1.0)),
    ("mouth_iii", Category.MOUTH, False, (0.0, 1.0)),
    ("mouth_uuu", Category.MOUTH, False, (0.0, 1.0)),
    ("mouth_eee", Category.MOUTH, False, (0.0, 1.0)),
    ("mouth_ooo", Category.MOUTH, False, (0.0, 1.0)),
    ("mouth_delta", Category.MOUTH, False, (0.0, 1.0)),
    ("mouth_lowered_corner", Category.MOUTH, True, (0.0, 1.0)),
    ("mouth_raised_corner", Category.MOUTH, True, (0.0, 1.0)),
    ("mouth_smirk", Category.MOUTH, False, (0.0, 1.0)),
    ("iris_rotation_x", Category.IRIS_ROTATION, False, (-1.0, 1.0)),
    ("iris_rotation_y", Category.IRIS_ROTATION, False, (-1.0, 1.0)),
    ("head_x", Category.FACE_ROTATION, False, (-1.0, 1.0)),
    ("head_y", Category.FACE_ROTATION, False, (-1.0, 1.0)),
    ("neck_z", Category.FACE_ROTATION, False, (-1.0, 1.0)),
    ("body_y", Category.BODY_ROTATION, False, (-1.0, 1.0)),
    ("body_z", Category.BODY_ROTATION, False, (-1.0, 1.0)),
    ("breathing", Category.BREATHING, False, (0.0, 1.0)),
)
_NO_SUFFIX = {"mouth_delta", "mouth_smirk"}


def _build() -> tuple[Parameter, ...]:
    params: list[Parameter] = []
    for group, category, paired, (low, high) in _GROUPS:
        if paired:
            left, right = f"{group}_left_index", f"{group}_right_index"
            params.append(Parameter(left, len(params), group, category, low, high, "left", right))
            params.append(Parameter(right, len(params), group, category, low, high, "right", left))
        else:
            key = group if group in _NO_SUFFIX else f"{group}_index"
            params.append(Parameter(key, len(params), group, category, low, high))
    return tuple(params)


PARAMETERS: tuple[Parameter, ...] = _build()
KEYS: tuple[str, ...] = tuple(p.key for p in PARAMETERS)
BY_KEY: dict[str, Parameter] = {p.key: p for p in PARAMETERS}
NUM_PARAMETERS = len(PARAMETERS)
# Which slice of the vector each network stage reads.
EYEBROW_SLICE = slice(0, 12)
FACE_SLICE = slice(12, 39)
ROTATION_SLICE = slice(39, 45)
LOW = np.array([p.low for p in PARAMETERS], dtype=np.float32)
HIGH = np.array([p.high for p in PARAMETERS], dtype=np.float32)

PoseLike = Mapping[str, float] | Sequence[float] | np.ndarray | torch.Tensor


def _check_values(vector: np.ndarray, *, clip: bool) -> np.ndarray:
    bad = ~np.isfinite(vector)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise PoseError(f"pose parameter {KEYS[where[-1]]!r} is {vector[tuple(where)]}; "
                        "every value must be a finite number")
    if clip:
        return np.clip(vector, LOW, HIGH)
    outside = (vector < LOW - 1e-6) | (vector > HIGH + 1e-6)
    if outside.any():
        where = tuple(np.argwhere(outside)[0])
        p = PARAMETERS[where[-1]]
        raise PoseError(f"pose parameter {p.key!r} is {float(vector[where]):g}, outside its range "
                        f"[{p.low:g}, {p.high:g}]; pass clip=True to clamp it")
    return vector


def to_vector(pose: PoseLike, *, base: PoseLike | None = None, clip: bool = False) -> np.ndarray:
    """One pose as a float32 vector of 45. A dict may name any subset of keys; the rest come from ``base`` (zeros)."""
    if isinstance(pose, Mapping):
        unknown = [k for k in pose if k not in BY_KEY]
        if unknown:
            more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
            raise PoseError(f"unknown pose parameter(s): {', '.join(short_repr(k) for k in unknown[:3])}{more}; "
                            "see talkinghead_nb.pose.KEYS for the 45 valid names")
        vector = np.zeros(NUM_PARAMETERS, np.float32) if base is None else to_vector(base, clip=clip).copy()
        for key, value in pose.items():
            if isinstance(value, (bool, str, bytes)):
                raise PoseError(f"pose parameter {key!r} is {short_repr(value)}, not a number")
            try:
                vector[BY_KEY[key].index] = float(value)
            except (TypeError, ValueError):
                raise PoseError(f"pose parameter {key!r} is {short_repr(value)}, not a number") from None
            except OverflowError:
                raise PoseError(f"pose parameter {key!r} is {short_repr(value)}, far outside its range "
                                f"[{BY_KEY[key].low:g}, {BY_KEY[key].high:g}]") from None
    else:
        vector = np.asarray(pose.detach().cpu() if isinstance(pose, torch.Tensor) else pose, dtype=np.float32)
        if vector.shape != (NUM_PARAMETERS,):
            raise PoseError(f"a pose vector has {NUM_PARAMETERS} values, got shape {vector.shape}")
    return _check_values(vector, clip=clip)


def to_dict(vector: PoseLike) -> dict[str, float]:
    """A pose vector as ``{json_name: value}`` in network order (values rounded to 6 decimals for JSON)."""
    values = to_vector(vector, clip=False)
    return {key: round(float(v), 6) for key, v in zip(KEYS, values, strict=True)}


def to_tensor(poses: PoseLike | Iterable[PoseLike], device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32, *, clip: bool = False) -> torch.Tensor:
    """One pose or many as an (N, 45) tensor. Accepts a dict, a vector, a list of either, or an (N, 45) array."""
    if isinstance(poses, torch.Tensor) and poses.dim() == 2 or isinstance(poses, np.ndarray) and poses.ndim == 2:
        array = np.stack([to_vector(row, clip=clip) for row in np.asarray(
            poses.detach().cpu() if isinstance(poses, torch.Tensor) else poses, dtype=np.float32)])
    elif isinstance(poses, Mapping) or _is_flat_vector(poses):
        array = to_vector(poses, clip=clip)[None]
    else:
        rows = [to_vector(p, clip=clip) for p in poses]
        if not rows:
            raise PoseError("no poses given")
        array = np.stack(rows)
    return torch.from_numpy(array).to(device=device, dtype=dtype)


def _is_flat_vector(x: object) -> bool:
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return x.ndim == 1
    return isinstance(x, Sequence) and len(x) > 0 and all(isinstance(v, (int, float)) for v in x)
