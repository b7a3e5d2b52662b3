"""Write untrained model bundles for the latency benchmarks, and their ONNX exports.

Latency does not depend on the weights, so untrained (randomly initialised) networks stand in for
trained ones; nothing is downloaded. Usage::

    python benchmarks/make_bundles.py OUT_DIR [--arch mobilenet_v3_large resnet50] [--size 224]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_bundle(out: Path, architecture: str, size: int = 224, *, onnx: bool = True) -> Path:
    import torch

    from core.inference.export import export_bundle
    from core.model.architectures import build_model
    from core.model.bundle import save_bundle

    torch.manual_seed(0)
    net = build_model(architecture).eval()
    folder = out / f"{architecture}-{size}"
    save_bundle(
        net, folder, name=f"{architecture} (untrained, benchmark)", architecture=architecture, input_size=size
    )
    if onnx:
        export_bundle(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--arch", nargs="+", default=["mobilenet_v3_large", "resnet50"])
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args(argv)
    for arch in args.arch:
        print(make_bundle(args.out, arch, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
