"""The THA3 poser: five networks chained, a per-character cache, and render entry points."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F

from .. import pose as P
from ..character import Character
from ..imaging import tensor_to_rgba, to_pil
from ..layout import EYEBROW_BOX, FACE_BOX, Box
from ..weights import NETWORKS, ResolvedWeights, WeightsError, WeightsStore, check_variant
from . import openvino_backend
from .acceleration import CompiledOrEager, CudaGraphFrame
from .backend_choice import BACKENDS, BackendChoice, choose_backend, normalize_backend
from .networks import Editor, EyebrowDecomposer, EyebrowMorphingCombiner, FaceBodyRotator, FaceMorpher

_NETWORK_CLASSES = {
    "eyebrow_decomposer": EyebrowDecomposer,
    "eyebrow_morphing_combiner": EyebrowMorphingCombiner,
    "face_morpher": FaceMorpher,
    "two_algo_face_body_rotator": FaceBodyRotator,
    "editor": Editor,
}
# The networks that run on every frame (the decomposer runs once per character).
PER_FRAME_NETWORKS = ("eyebrow_morphing_combiner", "face_morpher", "two_algo_face_body_rotator", "editor")
# Where the eyebrow crop sits inside the face crop.
_EYEBROW_IN_FACE = (EYEBROW_BOX[0] - FACE_BOX[0], EYEBROW_BOX[1] - FACE_BOX[1], EYEBROW_BOX[2])

log = logging.getLogger(__name__)

_DECOMPOSED = ("eyebrow_layer", "background_layer")  # the eyebrow decomposer's outputs, cached per character
# The intermediate outputs, in pipeline order, with the stage that makes each (for the teaching view).
STAGE_OUTPUTS: dict[str, str] = {
    "eyebrow_layer": "eyebrow_decomposer",
    "background_layer": "eyebrow_decomposer",
    "morphed_eyebrow_layer": "eyebrow_morphing_combiner",
    "eyebrow_image": "eyebrow_morphing_combiner",
    "iris_mouth_warped": "face_morpher",
    "iris_mouth_image": "face_morpher",
    "face_image": "face_morpher",
    "face_morphed_full": "face_morpher",
    "direct_image": "two_algo_face_body_rotator",
    "warped_image": "two_algo_face_body_rotator",
    "grid_change": "two_algo_face_body_rotator",
    "editor_warped_image": "editor",
    "editor_color_change": "editor",
    "editor_color_alpha": "editor",
    "editor_grid_change": "editor",
    "image": "editor",
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {str(device)!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    device = resolved
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but this PyTorch build sees no CUDA GPU: use device='cpu', "
                           "or install a CUDA build of torch (see the README's quick start)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"no GPU {device}: this machine has {torch.cuda.device_count()} (cuda:0 … "
                         f"cuda:{torch.cuda.device_count() - 1})")
    return device


def resolve_variant(variant: str, device: torch.device) -> str:
    if variant == "auto":
        return "separable_half" if device.type == "cuda" else "separable_float"
    return check_variant(variant)


def check_options(device: torch.device, *, backend: str, compile: bool, cuda_graphs: bool,
                  character_cache_size: int) -> None:
    """Refuse a combination of ``Poser`` options that cannot work, before any weights are read (``backend``: one of
    ``BACKENDS``, already resolved)."""
    if backend != "torch" and device.type != "cpu":
        raise ValueError(f"backend={backend!r} runs on the CPU only: use device='cpu', or backend='torch' on {device}")
    if backend != "torch" and compile:
        raise ValueError(f"backend={backend!r} compiles the networks itself: drop compile=True, or use "
                         "backend='torch' to compile with torch.compile")
    if backend != "torch":
        from .openvino_backend import import_openvino
        import_openvino(backend)
    if cuda_graphs and device.type != "cuda":
        raise ValueError(f"cuda_graphs=True needs a CUDA device, not {device}: leave cuda_graphs at None (the "
                         "default picks it on CUDA), or pass device='cuda'")
    if character_cache_size < 1:
        raise ValueError(f"character_cache_size={character_cache_size}: at least 1 is needed (the character being "
                         "rendered is cached)")


def _crop(image: Tensor, box: Box) -> Tensor:
    top, left, size = box
    return image[:, :, top:top + size, left:left + size]


def _paste(base: Tensor, patch: Tensor, box: Box, n: int) -> Tensor:
    out = base.expand(n, -1, -1, -1).clone()
    _crop(out, box).copy_(patch)
    return out


class Poser:
    """Poses a character with THA3.

    ``variant``: ``separable_float``, ``separable_half``, ``standard_float``, ``standard_half`` or ``auto``
    (separable_half on CUDA, separable_float on CPU). ``_half`` variants compute in fp16 on CUDA; the CPU has no
    fast fp16 convolution, so there they compute in fp32 with the half weights upcast.

    Speed options, all exact to float rounding (max |Δ| ≤ 1e-4 against the reference, tested):

    - ``stage_cache`` (default on): the eyebrow and face stages are skipped when their parameters and the character
      are those of the previous frame (blinks and talking leave the eyebrows alone; idle sway leaves both alone).
    - ``cuda_graphs`` (default on for CUDA): batch-1 frames replay a captured CUDA graph per character.
    - ``compile`` (default off): ``torch.compile`` the per-frame networks; about 1.8× faster on the CPU here, but the
      first frame takes 10–90 s (seconds once the compiler cache on disk is warm). Falls back to eager on failure.

    ``backend``: ``torch`` (default; alias ``exact``: bit-faithful to the reference), ``openvino`` (CPU; float32 but
    other kernels: max |Δ| up to ~1e-2, PSNR ≈ 99 dB) or ``openvino-bf16`` (CPU; bf16 in all four networks, for CPUs
    with bf16 units: PSNR ≈ 50–60 dB); both approximate, both need the ``openvino`` package. ``auto``: the fastest of
    these this machine has (:func:`.backend_choice.choose_backend`; on CUDA ``separable_half`` with CUDA graphs), torch
    where OpenVINO is missing or fails to convert. ``backend`` and ``backend_reason`` say what runs and why; the first
    OpenVINO conversion (~20 s, then cached) reports through ``progress`` (default: lines on stderr).

    Options that cannot work together raise ``ValueError`` (an unknown variant ``WeightsError``) before any weights are
    read. The CPU allocator setting that makes frames about 1.7× faster here (:func:`.acceleration.retain_freed_memory`)
    is process-wide, so it is the application's choice: the command line makes it, a Poser does not.
    """

    BACKENDS = BACKENDS

    def __init__(self, variant: str = "auto", device: str | torch.device = "auto", *,
                 weights_folder: str | os.PathLike | None = None, store: WeightsStore | None = None,
                 character_cache_size: int = 8, stage_cache: bool = True, cuda_graphs: bool | None = None,
                 compile: bool = False, backend: str = "torch", progress: Callable[[str], None] | None = None):
        self.device = resolve_device(device)
        backend = normalize_backend(backend)
        automatic = backend == "auto"
        choice = choose_backend(self.device, compile=compile) if automatic else BackendChoice(
            backend, resolve_variant("auto", self.device), self.device.type == "cuda", f"{backend}: asked for")
        backend = choice.backend
        self.backend_reason = choice.reason  # one line: the path and why (for a start-up message)
        self.variant = choice.variant if variant == "auto" else check_variant(variant)
        self.cuda_graphs = choice.cuda_graphs if cuda_graphs is None else cuda_graphs
        check_options(self.device, backend=backend, compile=compile, cuda_graphs=self.cuda_graphs,
                      character_cache_size=character_cache_size)
        half = self.variant.endswith("_half") and self.device.type == "cuda"
        self.dtype = torch.float16 if half else torch.float32
        self.weights: ResolvedWeights
        self.weights, state_dicts = (store or WeightsStore()).load(self.variant, weights_folder)
        separable = self.variant.startswith("separable")
        self.networks = nn.ModuleDict()
        for name in NETWORKS:
            network = _NETWORK_CLASSES[name](separable=separable)
            try:
                network.load_state_dict(state_dicts[name], strict=True)
            except RuntimeError as e:
                raise WeightsError(f"{self.weights.file(name)} does not fit the {self.variant} {name} network; "
                                   f"is it a file of another variant? ({str(e).splitlines()[0]})") from None
            self.networks[name] = network
        self.networks.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.backend = backend
        if backend != "torch":
            self._convert(backend, progress, fall_back=automatic)
        self.compiled = compile
        if compile:
            for name in PER_FRAME_NETWORKS:
                self.networks[name] = CompiledOrEager(self.networks[name], dynamic=False)
        self.stage_cache = stage_cache
        self._cache_size = character_cache_size
        self._characters: OrderedDict[str, tuple[Tensor, dict[str, Tensor]]] = OrderedDict()
        self._graphs: OrderedDict[str, CudaGraphFrame] = OrderedDict()
        self._batch_graphs: dict[int, CudaGraphFrame | None] = {}  # batch size bucket → graph (None: failed)
        self._last_stage: dict[str, tuple[bytes, dict[str, Tensor]]] = {}
        self._lock = threading.RLock()  # one render at a time: the caches are shared state

    def _convert(self, backend: str, progress: Callable[[str], None] | None, *, fall_back: bool) -> None:
        """The per-frame networks compiled by OpenVINO; with ``fall_back`` (an automatic choice) a failed conversion
        leaves the torch networks in place and says why in ``backend_reason``."""
        try:
            converted = openvino_backend.convert_networks(
                {name: self.networks[name] for name in PER_FRAME_NETWORKS}, backend,
                progress or openvino_backend.print_progress)
        except Exception as e:  # noqa: BLE001 — any conversion failure: the exact path still works
            if not fall_back:
                raise
            self.backend = "torch"
            self.backend_reason = (f"torch: OpenVINO could not convert the networks "
                                   f"({type(e).__name__}: {' '.join(str(e).split())[:160]})")
            log.warning("%s", self.backend_reason)
            return
        self.networks.update(converted)

    def __repr__(self) -> str:
        backend = f", backend={self.backend!r}" if self.backend != "torch" else ""
        return (f"Poser(variant={self.variant!r}, device={str(self.device)!r}, dtype={self.dtype}{backend}, "
                f"weights={self.weights.source}:{self.weights.folder})")

    # ---- the pipeline ------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def render_stages(self, character: Character, poses: P.PoseLike | Iterable[P.PoseLike]) -> dict[str, Tensor]:
        """Every intermediate output (see ``STAGE_OUTPUTS``) for a batch of poses; ``"image"`` is the result."""
        return self._render(character, poses, image_only=False)

    def _render(self, character: Character, poses: P.PoseLike | Iterable[P.PoseLike], *,
                image_only: bool) -> dict[str, Tensor]:
        pose = P.to_tensor(poses, "cpu", torch.float32)
        stage_keys = None
        if self.stage_cache:
            eyebrow_key = character.key.encode() + pose[:, P.EYEBROW_SLICE].numpy().tobytes()
            stage_keys = (eyebrow_key, eyebrow_key + pose[:, P.FACE_SLICE].numpy().tobytes())
        with self._lock:
            image, decomposed = self._prepared(character)
            return self._pipeline(image, decomposed, pose.to(self.device, self.dtype), stage_keys,
                                  image_only=image_only)

    @torch.inference_mode()
    def render_tensor(self, character: Character, poses: P.PoseLike | Iterable[P.PoseLike]) -> Tensor:
        """(N, 4, 512, 512) linear RGBA in [-1, 1], on the poser's device."""
        if not self.cuda_graphs:
            return self._render(character, poses, image_only=True)["image"]
        pose = P.to_tensor(poses, self.device, self.dtype)
        if pose.shape[0] != 1:
            return self._render(character, poses, image_only=True)["image"]
        with self._lock:
            return self._graph(character, pose)(pose)

    @torch.inference_mode()
    def render_batch(self, characters: Sequence[Character], poses: P.PoseLike | Iterable[P.PoseLike]) -> Tensor:
        """(N, 4, 512, 512): ``characters[i]`` in ``poses[i]``, several characters in one forward pass (how a GPU
        serves many live sessions at once). No stage cache; with ``cuda_graphs`` the batch is padded to a size bucket
        (1, 2, 4, 8, …) and replays that bucket's graph."""
        pose = P.to_tensor(poses, self.device, self.dtype)
        n = pose.shape[0]
        if len(characters) != n:
            raise ValueError(f"render_batch got {len(characters)} characters for {n} poses: give one of each per frame")
        with self._lock:
            prepared = [self._prepared(c) for c in characters]
            inputs = (torch.cat([image for image, _ in prepared]),
                      *(torch.cat([layers[k] for _, layers in prepared]) for k in _DECOMPOSED),
                      pose)
            if not self.cuda_graphs:
                return self._batch_frame(*inputs)
            bucket = 1 << (n - 1).bit_length()
            if bucket > n:  # pad with copies of the last frame
                inputs = tuple(torch.cat([x, x[-1:].expand(bucket - n, *x.shape[1:])]) for x in inputs)
            if bucket not in self._batch_graphs:
                try:
                    self._batch_graphs[bucket] = CudaGraphFrame(self._batch_frame, *inputs)
                except RuntimeError as e:  # a capture that fails once would fail again: run this size eagerly
                    log.warning("no CUDA graph for batches of %d (%s); rendering them without", bucket, e)
                    self._batch_graphs[bucket] = None
            graph = self._batch_graphs[bucket]
            return (graph(*inputs) if graph is not None else self._batch_frame(*inputs))[:n]

    def _batch_frame(self, image: Tensor, *layers_and_pose: Tensor) -> Tensor:
        *layers, pose = layers_and_pose
        return self._pipeline(image, dict(zip(_DECOMPOSED, layers, strict=True)), pose, image_only=True)["image"]

    def warm_up(self, character: Character) -> float:
        """Render one frame so that compilation, graph capture and algorithm selection happen now rather than on the
        first frame a viewer waits for. Returns the seconds it took."""
        start = time.perf_counter()
        self.render_tensor(character, np.zeros(P.NUM_PARAMETERS, np.float32))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def _pipeline(self, image: Tensor, decomposed: dict[str, Tensor], pose: Tensor,
                  stage_keys: tuple[bytes, bytes] | None = None, *, image_only: bool = False) -> dict[str, Tensor]:
        """The four per-frame stages; with ``stage_keys`` the eyebrow and face stages reuse the previous frame's
        outputs when their keys match it. ``image_only``: just ``{"image": …}`` (an OpenVINO network then copies out
        only the outputs the next stage reads)."""
        n = pose.shape[0]
        net = self.networks

        def eyebrow_stage() -> dict[str, Tensor]:
            return net["eyebrow_morphing_combiner"](
                decomposed["background_layer"].expand(n, -1, -1, -1),
                decomposed["eyebrow_layer"].expand(n, -1, -1, -1),
                pose[:, P.EYEBROW_SLICE])

        def face_stage() -> dict[str, Tensor]:
            eyebrow = self._reuse("eyebrow", stage_keys and stage_keys[0], eyebrow_stage)
            face_input = _paste(_crop(image, FACE_BOX), eyebrow["eyebrow_image"], _EYEBROW_IN_FACE, n)
            face = net["face_morpher"](face_input, pose[:, P.FACE_SLICE])
            return {**eyebrow, **face, "face_morphed_full": _paste(image, face["face_image"], FACE_BOX, n)}

        face = self._reuse("face", stage_keys and stage_keys[1], face_stage)
        full = face["face_morphed_full"]
        half = F.interpolate(full, size=(256, 256), mode="bilinear", align_corners=False)
        rotation = pose[:, P.ROTATION_SLICE]
        rotated = self._run("two_algo_face_body_rotator", ("warped_image", "grid_change") if image_only else None,
                            half, rotation)
        edited = self._run(
            "editor", ("image",) if image_only else None,
            full,
            F.interpolate(rotated["warped_image"], size=(512, 512), mode="bilinear", align_corners=False),
            F.interpolate(rotated["grid_change"], size=(512, 512), mode="bilinear", align_corners=False),
            rotation)
        if image_only:
            return {"image": edited["image"]}
        outputs = {**{k: v.expand(n, -1, -1, -1) for k, v in decomposed.items()}, **face, **rotated, **edited}
        return {name: outputs[name] for name in STAGE_OUTPUTS}

    def _run(self, name: str, outputs: tuple[str, ...] | None, *inputs: Tensor) -> dict[str, Tensor]:
        """Network ``name`` on ``inputs``; an OpenVINO network copies out only ``outputs`` (None: all); a torch
        network computes them all anyway."""
        network = self.networks[name]
        if outputs is not None and isinstance(network, openvino_backend.OpenVinoNetwork):
            return network(*inputs, outputs=outputs)
        return network(*inputs)

    def _reuse(self, stage: str, key: bytes | None, compute) -> dict[str, Tensor]:
        """``compute()``, or the previous result of ``stage`` when it was computed for the same ``key``."""
        if key is None:
            return compute()
        last = self._last_stage.get(stage)
        if last is not None and last[0] == key:
            return last[1]
        result = compute()
        self._last_stage[stage] = (key, result)
        return result

    def _graph(self, character: Character, pose: Tensor) -> CudaGraphFrame:
        key = character.key
        if key in self._graphs:
            self._graphs.move_to_end(key)
            return self._graphs[key]
        image, decomposed = self._prepared(character)
        graph = CudaGraphFrame(lambda p: self._pipeline(image, decomposed, p, image_only=True)["image"], pose)
        self._graphs[key] = graph
        while len(self._graphs) > self._cache_size:
            self._graphs.popitem(last=False)
        return graph

    def render_array(self, character: Character, poses: P.PoseLike | Iterable[P.PoseLike]) -> np.ndarray:
        """(N, 512, 512, 4) uint8 sRGBA."""
        return tensor_to_rgba(self.render_tensor(character, poses))

    def render(self, character: Character, pose: P.PoseLike) -> Image.Image:
        """One pose → a 512×512 RGBA PIL image."""
        return to_pil(self.render_array(character, pose)[0])

    # ---- per-character cache -----------------------------------------------------------------------------------

    def _prepared(self, character: Character) -> tuple[Tensor, dict[str, Tensor]]:
        """The character on the device and its eyebrow decomposition (which depends on the image only)."""
        key = character.key
        if key in self._characters:
            self._characters.move_to_end(key)
            return self._characters[key]
        image = character.tensor.to(self.device, self.dtype)
        decomposed = self.networks["eyebrow_decomposer"](_crop(image, EYEBROW_BOX))
        self._characters[key] = (image, decomposed)
        while len(self._characters) > self._cache_size:
            self._characters.popitem(last=False)
        return image, decomposed
