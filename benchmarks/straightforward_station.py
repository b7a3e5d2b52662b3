"""The straightforward station: the baseline that ``station_ratio.py`` compares with.

Written the way the pipeline is usually first put together, one part at a time:

1. ``cv2.imread`` the file as grayscale;
2. the eval preset (the same pixels as the real pipeline);
3. eager PyTorch with pytorch-grad-cam's ``GradCAM`` on the last feature block (one forward
   pass and a full backward pass; the score is read from the same forward pass, ``cam.outputs``);
4. ``show_cam_on_image`` on the part in RGB at display resolution for the overlay;
5. one committed SQLite row per part in the visual log, with the 8-bit heatmap (the same
   ``VisualLog.record`` as the real pipeline, so the log costs the same on both sides).

Usage::

    python benchmarks/straightforward_station.py BUNDLE IMAGE_DIR [--parts N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run_straightforward(
    bundle: Path, images: Sequence[Path], *, parts: int | None = None
) -> dict[str, object]:
    """Run the baseline station; returns parts, wall time, parts per second and per-part latency."""
    import cv2
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from core.common.types import Inspection, Part
    from core.model.architectures import cam_target_layer
    from core.model.bundle import load_net
    from core.storage import VisualLog

    net, card = load_net(bundle)
    preset = card.preset
    total = len(images) if parts is None else parts
    targets = [ClassifierOutputTarget(1)]
    latencies: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="inspector-baseline-") as tmp,
        GradCAM(model=net, target_layers=[cam_target_layer(net)]) as gradcam,
        VisualLog(f"sqlite:///{Path(tmp) / 'baseline.sqlite'}", media_root=Path(tmp) / "media") as log,
    ):
        warm = torch.from_numpy(preset.batch([np.zeros((preset.input_size,) * 2, np.uint8)]))
        gradcam(input_tensor=warm, targets=targets)
        started = time.perf_counter()
        for index in range(total):
            t0 = time.perf_counter()
            path = Path(images[index % len(images)])
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            x = torch.from_numpy(preset.batch([image]))
            heat = gradcam(input_tensor=x, targets=targets)[0]
            score = float(torch.softmax(gradcam.outputs.detach(), 1)[0, 1])
            rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB).astype(np.float32) / 255.0
            show_cam_on_image(rgb, cv2.resize(heat, (image.shape[1], image.shape[0])), use_rgb=True)
            heatmap = np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)
            latency_ms = (time.perf_counter() - t0) * 1000.0
            inspection = Inspection(
                score=score, threshold=card.threshold, heatmap=heatmap, latency_ms=latency_ms
            )
            part = Part(
                source_ref=str(path), arrived_at=datetime.now(UTC), image=image, encoded=path.read_bytes()
            )
            log.record(part, inspection, model_hash=card.weights_sha256, model_name=card.name)
            latencies.append(time.perf_counter() - t0)
        wall = time.perf_counter() - started
        rows = log.count()
    ms = np.asarray(latencies) * 1000.0
    return {
        "pipeline": "straightforward (eager torch + pytorch-grad-cam GradCAM + show_cam_on_image + row per part)",
        "parts": total,
        "rows_logged": rows,
        "wall_s": round(wall, 3),
        "parts_per_s": round(total / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    from core.station.bench import list_images

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", type=Path)
    parser.add_argument("image_dir", type=Path)
    parser.add_argument("--parts", type=int)
    args = parser.parse_args(argv)
    print(
        json.dumps(run_straightforward(args.bundle, list_images(args.image_dir), parts=args.parts), indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
