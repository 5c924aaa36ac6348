"""int8 post-training quantization (OpenVINO + NNCF) of the rotator and the editor: speed of each network against
its float32 and bf16 OpenVINO versions, and PSNR of the final image against the exact one (issue 15's approximate
paths need ≥ 40 dB), on animation poses and random extreme poses of a character not used for calibration.

    pip install nncf && python bench/int8.py [--out FILE]

Calibration: the inputs each network receives while two characters (lambda_00, crypko_03) run 20 animation poses
and 5 random poses. Two settings: NNCF's default, and its mixed preset with the output heads and the first
block kept in float.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine_fps import animation_poses, psnr  # noqa: E402
from bench.report import publish  # noqa: E402
from bench.roofline import median_seconds  # noqa: E402
from talkinghead_nb import pose as P  # noqa: E402
from talkinghead_nb.character import example_path, load_character  # noqa: E402
from talkinghead_nb.engine import Poser  # noqa: E402
from talkinghead_nb.engine.acceleration import retain_freed_memory  # noqa: E402
from talkinghead_nb.engine.openvino_backend import OpenVinoNetwork  # noqa: E402

NETWORKS = ("two_algo_face_body_rotator", "editor")
KEPT_IN_FLOAT = [".*creator.*", ".*grid_change.*", ".*alpha.*", ".*color.*", ".*downsample_blocks.0.*"]


def calibration_inputs(poser: Poser) -> dict[str, list[tuple[np.ndarray, ...]]]:
    captured: dict[str, list] = {name: [] for name in NETWORKS}
    hooks = [poser.networks[name].register_forward_hook(
        lambda module, args, out, name=name: captured[name].append(tuple(x.numpy().copy() for x in args)))
        for name in NETWORKS]
    rng = np.random.default_rng(5)
    poses = [*animation_poses(60, seed=1)[::3], *rng.uniform(P.LOW, P.HIGH, (5, P.NUM_PARAMETERS)).astype(np.float32)]
    for name in ("lambda_00", "crypko_03"):
        character = load_character(example_path(name))
        for pose in poses:
            poser.render_tensor(character, pose)
    for hook in hooks:
        hook.remove()
    return captured


class CompiledNetwork(torch.nn.Module):
    """An OpenVINO model (with the torch network's output names) called like the torch network."""

    def __init__(self, model, names: list[str], hint: str):
        super().__init__()
        import openvino as ov
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                          "PERFORMANCE_HINT": "LATENCY"})
        self.request, self.names = compiled.create_infer_request(), names

    def forward(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        results = self.request.infer([np.ascontiguousarray(x.numpy()) for x in inputs])
        return {name: torch.from_numpy(np.array(results[i])) for i, name in enumerate(self.names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    import nncf
    import openvino as ov
    retain_freed_memory()
    poser = Poser("separable_float", "cpu", stage_cache=False)
    data = calibration_inputs(poser)
    test_character = load_character(example_path("crypko_05"))
    rng = np.random.default_rng(11)
    test_poses = [*animation_poses(30, seed=7)[::5], *rng.uniform(P.LOW, P.HIGH, (4, P.NUM_PARAMETERS)).astype(
        np.float32), P.HIGH, P.LOW]
    exact = [poser.render_tensor(test_character, p).clone() for p in test_poses]
    lines = [f"torch {torch.__version__}, openvino {ov.__version__}, nncf {nncf.__version__}, "
             f"{torch.get_num_threads()} threads; {len(data[NETWORKS[0]])} calibration inputs per network; PSNR of "
             f"the final image against the exact one over {len(test_poses)} poses of crypko_05 (min / mean)",
             f"{'network':28} {'path':26} {'ms':>7} {'PSNR min':>9} {'mean':>6}"]
    print(lines[0], flush=True)
    settings = {"int8": {}, "int8 mixed, heads in float": {
        "preset": nncf.QuantizationPreset.MIXED,
        "ignored_scope": nncf.IgnoredScope(patterns=KEPT_IN_FLOAT, validate=False)}}
    for name in NETWORKS:
        torch_network = poser.networks[name]
        names = list(torch_network(*(torch.from_numpy(x) for x in data[name][0])))
        model = ov.Core().read_model(OpenVinoNetwork(name, torch_network, "openvino").model_file)
        models = {"float32": (model, "f32"), "bf16": (model, "bf16")}
        for label, options in settings.items():
            quantized = nncf.quantize(model, nncf.Dataset(data[name]), subset_size=len(data[name]),
                                      fast_bias_correction=True, **options)
            models[label] = (quantized, "bf16")
        for label, (candidate, hint) in models.items():
            network = CompiledNetwork(candidate, names, hint)
            tensors = tuple(torch.from_numpy(x) for x in data[name][0])
            spent = median_seconds(lambda network=network, tensors=tensors: network(*tensors), repeats=8) * 1e3
            poser.networks[name] = network
            quality = [psnr(poser.render_tensor(test_character, p), e) for p, e in zip(test_poses, exact,
                                                                                          strict=True)]
            poser.networks[name] = torch_network
            lines.append(f"{name:28} {label:26} {spent:7.1f} {min(quality):9.1f} {np.mean(quality):6.1f}")
            print(lines[-1], flush=True)
    publish(lines, args.out)


if __name__ == "__main__":
    main()
