"""Beyond one machine, on Ray (an optional extra: ``pip install 'talkinghead-nb[ray]'``): sprites for many
characters (:func:`export_many`, also with worker processes and no Ray), and the live server as a Ray Serve
application whose sessions each live on one of several engines (:func:`serve_live`).

Nothing else in the package imports this one; names load on first use, so Ray loads only when asked for.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_WHERE = {
    "export_many": "batch",
    "BatchResult": "batch",
    "find_characters": "inputs",
    "BatchStalled": "ray_batch",
    "EngineSpec": "engines",
    "serve_live": "serve",
    "LiveCluster": "serve",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
