"""The THA3 poser: five networks chained, a per-character cache, and render entry points."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F

from .. import pose as P
from ..character import Character
from ..imaging import tensor_to_rgba, to_pil
from ..weights import NETWORKS, ResolvedWeights, WeightsError, WeightsStore
from .networks import Editor, EyebrowDecomposer, EyebrowMorphingCombiner, FaceBodyRotator, FaceMorpher

_NETWORK_CLASSES = {
    "eyebrow_decomposer": EyebrowDecomposer,
    "eyebrow_morphing_combiner": EyebrowMorphingCombiner,
    "face_morpher": FaceMorpher,
    "two_algo_face_body_rotator": FaceBodyRotator,
    "editor": Editor,
}
# Crops of the 512×512 character that the networks work on: (top, left, size).
EYEBROW_BOX = (64, 192, 128)
FACE_BOX = (32, 160, 192)
# Where the eyebrow crop sits inside the face crop.
_EYEBROW_IN_FACE = (EYEBROW_BOX[0] - FACE_BOX[0], EYEBROW_BOX[1] - FACE_BOX[1], EYEBROW_BOX[2])

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
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but this PyTorch build sees no CUDA GPU: use device='cpu', "
                           "or install a CUDA build of torch (see the README)")
    return device


def resolve_variant(variant: str, device: torch.device) -> str:
    if variant == "auto":
        return "separable_half" if device.type == "cuda" else "separable_float"
    return variant


def _crop(image: Tensor, box: tuple[int, int, int]) -> Tensor:
    top, left, size = box
    return image[:, :, top:top + size, left:left + size]


def _paste(base: Tensor, patch: Tensor, box: tuple[int, int, int], n: int) -> Tensor:
    out = base.expand(n, -1, -1, -1).clone()
    _crop(out, box).copy_(patch)
    return out


class Poser:
    """Poses a character with THA3.

    ``variant``: ``separable_float``, ``separable_half``, ``standard_float``, ``standard_half`` or ``auto``
    (separable_half on CUDA, separable_float on CPU). ``_half`` variants compute in fp16 on CUDA; the CPU has no
    fast fp16 convolution, so there they compute in fp32 with the half weights upcast.
    """

    def __init__(self, variant: str = "auto", device: str | torch.device = "auto", *,
                 weights_folder: str | os.PathLike | None = None, store: WeightsStore | None = None,
                 character_cache_size: int = 8):
        self.device = resolve_device(device)
        self.variant = resolve_variant(variant, self.device)
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
        self._cache_size = character_cache_size
        self._characters: OrderedDict[str, tuple[Tensor, dict[str, Tensor]]] = OrderedDict()

    def __repr__(self) -> str:
        return (f"Poser(variant={self.variant!r}, device={str(self.device)!r}, dtype={self.dtype}, "
                f"weights={self.weights.source}:{self.weights.folder})")

    # ---- the pipeline ------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def render_stages(self, character: Character, poses: P.PoseLike | Iterable[P.PoseLike]) -> dict[str, Tensor]:
        """Every intermediate output (see ``STAGE_OUTPUTS``) for a batch of poses; ``"image"`` is the result."""
        pose = P.to_tensor(poses, self.device, self.dtype)
        n = pose.shape[0]
        image, decomposed = self._prepared(character)
        net = self.networks
        eyebrow = net["eyebrow_morphing_combiner"](
            decomposed["background_layer"].expand(n, -1, -1, -1),
            decomposed["eyebrow_layer"].expand(n, -1, -1, -1),
            pose[:, P.EYEBROW_SLICE])
        face_input = _paste(_crop(image, FACE_BOX), eyebrow["eyebrow_image"], _EYEBROW_IN_FACE, n)
        face = net["face_morpher"](face_input, pose[:, P.FACE_SLICE])
        full = _paste(image, face["face_image"], FACE_BOX, n)
        half = F.interpolate(full, size=(256, 256), mode="bilinear", align_corners=False)
        rotation = pose[:, P.ROTATION_SLICE]
        rotated = net["two_algo_face_body_rotator"](half, rotation)
        edited = net["editor"](
            full,
            F.interpolate(rotated["warped_image"], size=(512, 512), mode="bilinear", align_corners=False),
            F.interpolate(rotated["grid_change"], size=(512, 512), mode="bilinear", align_corners=False),
            rotation)
        outputs = {**{k: v.expand(n, -1, -1, -1) for k, v in decomposed.items()},
                   **eyebrow, **face, "face_morphed_full": full, **rotated, **edited}
        return {name: outputs[name] for name in STAGE_OUTPUTS}

    @torch.inference_mode()
    def render_tensor(self, character: Character, poses: P.PoseLike | Iterable[P.PoseLike]) -> Tensor:
        """(N, 4, 512, 512) linear RGBA in [-1, 1], on the poser's device."""
        return self.render_stages(character, poses)["image"]

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
