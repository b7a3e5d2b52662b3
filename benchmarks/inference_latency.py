"""Inference alone vs inference plus Grad-CAM heatmap, per part, for PyTorch and ONNX Runtime.

For each bundle (see ``make_bundles.py``) and each device (the CPU, and CUDA when present) it
times, on one 224 x 224 part at a time:

- ``torch plain``: eager ``net(x)``, the score alone;
- ``torch + heatmap``: ``core.model.explain.ScoreAndCam``, score and raw cam in one forward pass;
- ``torch grad-cam``: pytorch-grad-cam's ``GradCAM`` (forward plus full backward), the usual way;
- ``ort plain``: ONNX Runtime on the network alone (exported here for the comparison);
- ``ort + heatmap``: ONNX Runtime on the bundle's ``model.onnx`` (score and cam).

The heatmap rows include the normalisation to the 8-bit heatmap (numpy/OpenCV) that the
Inspector does. The variants are interleaved in rounds, and each figure is the median over rounds
of per-round medians, because the CPU of a shared machine is noisy. Usage::

    python benchmarks/inference_latency.py BUNDLE [BUNDLE...] [--rounds 5] [--iters 40] [--json OUT]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _median_ms(fn: Callable[[], object], iters: int) -> tuple[float, float]:
    """Median wall time of one call, and the mean process CPU time of one call (all threads)."""
    fn()
    times = []
    cpu_start = time.process_time()
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    cpu_ms = (time.process_time() - cpu_start) * 1000.0 / iters
    return statistics.median(times) * 1000.0, cpu_ms


def _plain_onnx(net: object, size: int, channels: int) -> bytes:
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net, (torch.zeros(1, channels, size, size),), buffer, dynamo=False,
            input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
            opset_version=17,
        )  # fmt: skip
    return buffer.getvalue()


def measure(bundle: Path, device: str, *, rounds: int, iters: int, threads: int | None) -> dict[str, object]:
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from core.inference.backends import OnnxBackend, ort_providers, ort_session
    from core.model.architectures import cam_target_layer
    from core.model.bundle import load_net
    from core.model.explain import normalise_cams, score_and_cam, to_uint8

    net, card = load_net(bundle)
    size = card.input_size
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((1, card.channels, size, size)).astype(np.float32)
    net = net.to(device)
    module = score_and_cam(net).to(device).eval()
    x = torch.from_numpy(x_np).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def torch_plain() -> None:
        with torch.inference_mode():
            torch.softmax(net(x), 1)[:, 1].cpu().numpy()

    def torch_cam() -> None:
        with torch.inference_mode():
            _, cam = module(x)
            to_uint8(normalise_cams(cam.cpu().numpy(), size))

    gradcam = GradCAM(model=net, target_layers=[cam_target_layer(net)])
    targets = [ClassifierOutputTarget(1)]

    def torch_gradcam() -> None:
        heat = gradcam(input_tensor=x, targets=targets)
        torch.softmax(gradcam.outputs, 1)[:, 1].detach().cpu().numpy()
        to_uint8(heat)
        sync()

    variants: dict[str, Callable[[], None]] = {
        "torch plain": torch_plain,
        "torch + heatmap": torch_cam,
        "torch grad-cam": torch_gradcam,
    }
    try:
        ort_providers(device)
    except RuntimeError:
        pass  # no ONNX Runtime provider for this device
    else:
        plain = ort_session(_plain_onnx(net.cpu(), size, card.channels), device=device, threads=threads)
        net.to(device)
        backend = OnnxBackend(bundle, device, threads=threads)
        variants["ort plain"] = lambda: plain.run(None, {"input": x_np})
        variants["ort + heatmap"] = lambda: to_uint8(normalise_cams(backend.run(x_np)[1], size))

    per_round: dict[str, list[float]] = {name: [] for name in variants}
    cpu_round: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            wall, cpu = _median_ms(fn, iters)
            per_round[name].append(wall)
            cpu_round[name].append(cpu)
    gradcam.__exit__(None, None, None)  # releases its hooks
    result: dict[str, object] = {name: round(statistics.median(v), 3) for name, v in per_round.items()}
    result["torch heatmap / plain"] = round(result["torch + heatmap"] / result["torch plain"], 3)  # type: ignore[operator]
    result["torch grad-cam / plain"] = round(result["torch grad-cam"] / result["torch plain"], 3)  # type: ignore[operator]
    if "ort plain" in result:
        result["ort heatmap / plain"] = round(result["ort + heatmap"] / result["ort plain"], 3)  # type: ignore[operator]
    # With one thread the CPU time of a call is close to its wall time on an idle core, whatever
    # else the machine is doing: a steadier figure than the wall time on a shared machine.
    result["cpu_ms"] = {name: round(statistics.median(v), 3) for name, v in cpu_round.items()}
    result["rounds_ms"] = {name: [round(t, 3) for t in v] for name, v in per_round.items()}
    return result


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: one per core)")
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], action="append", help="default: cpu, and cuda when present"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    report: dict[str, object] = {
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "ort_threads": args.threads,
        "load_average_before": list(_loadavg()), "results": {},
    }  # fmt: skip
    for bundle in args.bundles:
        for device in devices:
            key = f"{bundle.name} {device}"
            result = measure(bundle, device, rounds=args.rounds, iters=args.iters, threads=args.threads)
            report["results"][key] = result  # type: ignore[index]
            shown = {k: v for k, v in result.items() if k != "rounds_ms"}
            print(key, json.dumps(shown), flush=True)
    report["load_average_after"] = list(_loadavg())
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def _loadavg() -> tuple[float, float, float]:
    try:
        import os

        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3  # type: ignore[return-value]


if __name__ == "__main__":
    sys.exit(main())
