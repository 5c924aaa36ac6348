"""OpenVINO as the CPU backend of the per-frame networks (opt-in: ``Poser(..., backend="openvino")``).

On this project's 2-core Xeon, OpenVINO's convolutions beat PyTorch's by about 2× in float32, and with
``openvino-bf16`` (AMX/AVX-512 bf16 units where the CPU has them) by about 5× on the editor; both are approximate
(float32: max |Δ| ≈ 1e-3, PSNR ≈ 99 dB; bf16: PSNR ≈ 50–60 dB; docs/engine.md). The networks are converted from
our torch modules, in the equivalent forms of :mod:`.export_forms`, with static batch-1 shapes (larger batches run
pose by pose); the converted models are cached on disk (:func:`cache_dir`) by a hash of the weights, the code that
shapes the graph, the shapes and the versions of torch and OpenVINO, so only the first start pays the conversion
(about 19 s for the four networks here), with a progress line on stderr.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from . import blocks, export_forms, networks
from .export_forms import export_form

# The code that shapes a converted graph: a cached conversion is reused only if none of it changed.
_GRAPH_SOURCES = (Path(__file__), Path(export_forms.__file__), Path(networks.__file__), Path(blocks.__file__))

_NAMES_FILE = "outputs.txt"  # beside a cached model: the names of its outputs, one a line
# One example input per per-frame network: (channels, size) of each image input, then the pose width.
EXAMPLE_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "eyebrow_morphing_combiner": ((1, 4, 128, 128), (1, 4, 128, 128), (1, 12)),
    "face_morpher": ((1, 4, 192, 192), (1, 27)),
    "two_algo_face_body_rotator": ((1, 4, 256, 256), (1, 6)),
    "editor": ((1, 4, 512, 512), (1, 4, 512, 512), (1, 2, 512, 512), (1, 6)),
}
# bf16 pays on every network once the small ones' transposed convolutions are rewritten (``export_forms``).
PRECISIONS = {"openvino": dict.fromkeys(EXAMPLE_SHAPES, "f32"), "openvino-bf16": dict.fromkeys(EXAMPLE_SHAPES, "bf16")}


class _TupleOutputs(nn.Module):
    """OpenVINO's converter wants a tuple out, our networks give a dict."""

    def __init__(self, network: nn.Module, names: list[str]):
        super().__init__()
        self.network, self.names = network, names

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        outputs = self.network(*inputs)
        return tuple(outputs[name] for name in self.names)


def import_openvino(backend: str):
    """The ``openvino`` module, or a RuntimeError that says how to install it."""
    try:
        import openvino
    except ImportError:
        raise RuntimeError(f"backend={backend!r} needs the openvino package: pip install openvino") from None
    return openvino


def print_progress(line: str) -> None:
    """The default conversion progress: one line on stderr."""
    print(line, file=sys.stderr, flush=True)


def convert_networks(networks: Mapping[str, nn.Module], backend: str,
                     progress: Callable[[str], None] = print_progress) -> dict[str, OpenVinoNetwork]:
    """``networks`` (per-frame names → torch modules) compiled by OpenVINO; a conversion that is not cached yet is
    announced through ``progress`` ("converting the networks for OpenVINO (first time, ~20 s) …", then one line per
    network)."""
    announced = False

    def announce(name: str, number: int) -> None:
        nonlocal announced
        if not announced:
            progress(f"converting the networks for OpenVINO (first time, ~20 s; cached in {cache_dir()}) …")
            announced = True
        progress(f"  {name} {number}/{len(networks)} …")

    return {name: OpenVinoNetwork(name, network, backend, on_convert=lambda name=name, n=n: announce(name, n))
            for n, (name, network) in enumerate(networks.items(), 1)}


class OpenVinoNetwork(nn.Module):
    """A per-frame network compiled by OpenVINO for the CPU; called like the torch module, returns the same dict
    (or, with ``outputs``, only those entries: the others are not copied out)."""

    def __init__(self, name: str, network: nn.Module, backend: str, *,
                 on_convert: Callable[[], None] | None = None):
        super().__init__()
        ov = import_openvino(backend)
        generator = torch.Generator().manual_seed(0)
        example = tuple(torch.rand(shape, generator=generator) for shape in EXAMPLE_SHAPES[name])
        core = ov.Core()
        precision = PRECISIONS[backend][name]
        if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            precision = "f32"  # what OpenVINO would run anyway on this CPU; the f32 form is the faster one there
        self.precision = precision  # what it runs in (profilers compile with it)
        with torch.no_grad():
            settings = f"{ov.__version__} {torch.__version__} {precision} {EXAMPLE_SHAPES[name]}"
            folder = cache_dir() / f"{name}-{_fingerprint(network, settings)}"
            self.model_file = folder / "model.xml"  # the converted model (profilers read it)
            model, self.names = _read_cached(core, folder)
            if model is None:
                if on_convert is not None:
                    on_convert()
                self.names = list(network(*example))  # the outputs' names, in order (the cache keeps them)
                with warnings.catch_warnings():  # the converter traces with torch.jit and says so at length
                    warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
                    warnings.simplefilter("ignore", category=DeprecationWarning)
                    model = ov.convert_model(_TupleOutputs(export_form(network, precision), self.names),
                                             example_input=example,
                                             input=[list(shape) for shape in EXAMPLE_SHAPES[name]])
                _save(ov, model, self.names, folder)
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                     "PERFORMANCE_HINT": "LATENCY"})
        self._request = compiled.create_infer_request()

    def forward(self, *inputs: Tensor, outputs: tuple[str, ...] | None = None) -> dict[str, Tensor]:
        wanted = self.names if outputs is None else outputs
        if inputs[0].shape[0] != 1:
            parts = [self.forward(*(x[i:i + 1] for x in inputs), outputs=outputs) for i in range(inputs[0].shape[0])]
            return {name: torch.cat([p[name] for p in parts]) for name in wanted}
        results = self._request.infer([np.ascontiguousarray(x.numpy()) for x in inputs], share_inputs=True,
                                      share_outputs=True)
        # The request reuses its output buffers on the next call: copy what is wanted.
        return {name: torch.from_numpy(np.array(results[self.names.index(name)])) for name in wanted}


def cache_dir() -> Path:
    """``$TALKINGHEAD_NB_CACHE/openvino``, else ``~/.cache/talkinghead-nb/openvino``."""
    root = os.environ.get("TALKINGHEAD_NB_CACHE") or Path.home() / ".cache" / "talkinghead-nb"
    return Path(root) / "openvino"


def _fingerprint(network: nn.Module, settings: str) -> str:
    """A hash of the network's class, weights and the code that converts it, and ``settings``."""
    digest = hashlib.sha256(f"{type(network).__name__} {settings}".encode())
    for source in _GRAPH_SOURCES:
        digest.update(source.read_bytes())
    for key, tensor in network.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def _read_cached(core, folder: Path) -> tuple[object | None, list[str]]:
    """The model converted into ``folder`` earlier and its outputs' names, or ``(None, [])`` (never converted; or
    unreadable: then the folder is removed)."""
    if not folder.is_dir():
        return None, []
    try:
        return core.read_model(folder / "model.xml"), (folder / _NAMES_FILE).read_text().split()
    except (RuntimeError, OSError):
        shutil.rmtree(folder, ignore_errors=True)  # damaged by hand or by a full disk: convert again
        return None, []


def _save(ov, model, names: list[str], folder: Path) -> None:
    """Write the converted model and its outputs' names beside their final place, then move them there in one
    step."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        ov.save_model(model, staging / "model.xml", compress_to_fp16=False)
        (staging / _NAMES_FILE).write_text("\n".join(names))
        os.replace(staging, folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process won the race, or the disk is read-only
