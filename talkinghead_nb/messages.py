"""Pieces of error messages that stay short whatever a client sent: long values cut, long lists summarised."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def short_repr(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters (an integer too long to print at all is described instead)."""
    try:
        text = repr(value)
    except ValueError:  # int → str refuses more than sys.get_int_max_str_digits() digits
        return "an integer of thousands of digits"
    return text if len(text) <= limit else text[:limit] + "…"


def name_list(names: Iterable[str], limit: int = 8) -> str:
    """``"a, b, c"``, or the first ``limit`` names and how many more there are (long names cut)."""
    names = list(names)
    if not names:
        return "none"
    shown = ", ".join(n if len(n) <= 40 else n[:40] + "…" for n in names[:limit])
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "")


def summary(problems: Sequence[str], limit: int = 5) -> str:
    """``"a; b; c"``, or the first ``limit`` problems and how many more there are: a message stays short whatever a
    client sent."""
    more = f"; … and {len(problems) - limit} more problems" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more
