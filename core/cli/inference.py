"""Inference commands: ``predict``, ``export`` and ``bench``.

Registered by ``core.cli`` (see ``COMMAND_MODULES``). Torch, ONNX Runtime and OpenCV are imported
inside the handlers only, so ``inspector --help`` stays instant and the ONNX backend runs on a
machine without torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.flags import ranged
from core.common.errors import UserError

BACKEND_CHOICES = ("auto", "torch", "onnx")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("predict", help="score images with a model; one JSON line per image")
    p.add_argument("model", type=Path)
    p.add_argument("images", type=Path, nargs="+")
    p.add_argument(
        "--threshold", type=ranged(float, ge=0, le=1), help="bad-probability threshold (default: the model's)"
    )
    p.add_argument("--heatmap-dir", type=Path, help="write heatmap overlays here")
    p.add_argument(
        "--cam",
        metavar="METHOD",
        help="heatmap method for the overlays instead of the station's Grad-CAM: "
        "gradcam, gradcam++, xgradcam, layercam, eigencam, scorecam, ablationcam (needs torch)",
    )
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help="default: auto")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, help="CPU threads for inference (default: one per core)")
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser(
        "export",
        help="export a model bundle for ONNX Runtime (model.onnx beside the weights, checked against PyTorch)",
    )
    p.add_argument("model", type=Path, help="model bundle folder")
    p.add_argument("--onnx", action="store_true", required=True, help="write model.onnx (the only format)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser(
        "bench",
        help="time the station itself (hot folder, inspector, visual log) on a folder of images",
        description=(
            "Copies the images into a temporary hot folder and runs the station's own runtime on "
            "them, with a throwaway SQLite visual log; reports parts per second, each part's time "
            "from its file to its committed row (p50/p95/p99), the inspector's and the log's share "
            "and memory. Without --device it runs the CPU and, when present, the GPU."
        ),
    )
    p.add_argument("model", type=Path)
    p.add_argument("image_dir", type=Path)
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help="default: auto")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--threads", type=ranged(int, ge=1), help="inference CPU threads (default: as the station)"
    )
    p.add_argument(
        "--parts", type=ranged(int, ge=1), help="run the first N images (default: all; each is one part)"
    )
    p.add_argument(
        "--serial", action="store_true", help="one part at a time, rows written on the station's thread"
    )
    p.add_argument(
        "--max-batch",
        type=ranged(int, ge=1),
        default=8,
        help="most waiting parts inspected at once (default 8)",
    )
    p.add_argument(
        "--rate",
        type=ranged(float, gt=0),
        metavar="HZ",
        help="publish files into the inbox at this rate, as a line would (default: all at once)",
    )
    p.add_argument(
        "--memory-every", type=ranged(int, ge=0), default=500, metavar="N", help="sample memory every N parts"
    )
    p.add_argument(
        "--second-opinion",
        choices=("on", "off", "both"),
        default="on",
        help="the bundle's good-only anomaly model beside the classifier: on (as the station runs), off "
        "(the classifier alone, on torch), or both runs one after the other with their ratio (default: on)",
    )
    p.add_argument("--plot", type=Path, metavar="PNG", help="write a plot of the latency distributions")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_bench)


def _cmd_predict(args: argparse.Namespace) -> int:
    from core.imaging.decode import DecodeError, read_image
    from core.inference.inspector import Inspector

    inspector = Inspector(
        args.model,
        backend=args.backend,
        device=None if args.device == "auto" else args.device,
        threshold=args.threshold,
        threads=args.threads,
    )
    reviewer = None
    if args.cam:
        from core.model.review_cam import REVIEW_METHODS, Reviewer

        if args.cam not in REVIEW_METHODS:
            raise UserError(f"unknown --cam {args.cam!r}; choose one of {', '.join(REVIEW_METHODS)}")
        reviewer = Reviewer(args.model, device=None if args.device == "auto" else args.device)
    if args.heatmap_dir:
        args.heatmap_dir.mkdir(parents=True, exist_ok=True)
    status = 0
    with inspector:
        for path in args.images:
            try:
                image = read_image(path)
            except DecodeError as exc:
                line: dict[str, object] = {"path": str(path), "verdict": "not_inspected", "reason": str(exc)}
                print(json.dumps(line, ensure_ascii=False), flush=True)
                status = 1
                continue
            result = inspector.inspect(image)
            line = {
                "path": str(path),
                "score": round(result.score, 5),
                "verdict": result.verdict.value,
                "threshold": result.threshold,
                "latency_ms": round(result.latency_ms, 2),
            }
            if args.heatmap_dir:
                import cv2

                from core.imaging.overlay import make_overlay

                heatmap = result.heatmap if reviewer is None else reviewer.explain(image, args.cam)[1]
                overlay = make_overlay(image, heatmap)
                out = args.heatmap_dir / f"{path.stem}_heatmap.png"
                # imencode + write_bytes rather than imwrite: imwrite cannot write non-ASCII paths on Windows.
                ok, png = cv2.imencode(".png", overlay[:, :, ::-1])
                if not ok:
                    raise RuntimeError(f"cannot encode the overlay of {path}")
                out.write_bytes(png.tobytes())
                line["heatmap"] = str(out)
                line["cam"] = args.cam or "gradcam (in the forward pass)"
            print(json.dumps(line, ensure_ascii=False), flush=True)
    return status


def _cmd_export(args: argparse.Namespace) -> int:
    from core.inference.export import export_bundle
    from core.inference.onnx_bundle import DEFAULT_OPSET, ONNX_FILE

    card = export_bundle(args.model, opset=args.opset or DEFAULT_OPSET)
    print(
        f"wrote {args.model / ONNX_FILE} (sha256 {card.onnx_sha256[:12]}, opset {card.opset}); "
        f"parity with PyTorch: score {card.parity_max_abs_score:.1e}, heatmap {card.parity_max_abs_heatmap:.1e}"
        + (
            f", anomaly score and map {card.parity_max_rel_anomaly:.1e} (relative)"
            if card.parity_max_rel_anomaly is not None
            else ""
        )
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from core.station.bench import bench_devices, format_report, list_images, plot_latency, run_bench

    images = list_images(args.image_dir)
    reports = []
    opinions = {"on": (True,), "off": (False,), "both": (True, False)}[args.second_opinion]
    for device in bench_devices(args.backend, args.device):
        for second_opinion in opinions:
            report = run_bench(
                args.model,
                images,
                # The classifier alone needs torch when the graph has the anomaly model built in.
                backend="torch" if not second_opinion and args.backend == "auto" else args.backend,
                device=device,
                threads=args.threads,
                parts=args.parts,
                pipelined=not args.serial,
                max_batch=args.max_batch,
                rate_hz=args.rate,
                memory_every=args.memory_every,
                progress=None if args.json else _progress,
                second_opinion=second_opinion,
            )
            reports.append(report)
            if not args.json:
                print(file=sys.stderr)
                print(format_report(report), flush=True)
    if args.second_opinion == "both" and not args.json:
        for with_it, alone in zip(reports[::2], reports[1::2], strict=True):
            print(
                f"the second opinion costs {with_it.device}: inference p50 {with_it.stages['inference'].p50_ms:.2f} "
                f"vs {alone.stages['inference'].p50_ms:.2f} ms "
                f"({with_it.stages['inference'].p50_ms / max(alone.stages['inference'].p50_ms, 1e-9):.2f}x); "
                f"{with_it.parts_per_s:.1f} vs {alone.parts_per_s:.1f} parts/s"
            )
    elif len(reports) > 1 and not args.json:
        cpu, gpu = reports[0], reports[1]
        print(
            f"side by side: inference p50 {cpu.stages['inference'].p50_ms:.2f} ms on {cpu.device}, "
            f"{gpu.stages['inference'].p50_ms:.2f} ms on {gpu.device}; station {cpu.parts_per_s:.0f} vs "
            f"{gpu.parts_per_s:.0f} parts/s"
        )
    if args.plot:
        plot_latency(reports, args.plot)
        if not args.json:
            print(f"latency plot: {args.plot}")
    if args.json:
        print(json.dumps({"runs": [r.to_dict() for r in reports]}, indent=2))
    return 0


def _progress(done: int, total: int) -> None:
    print(f"\rbench: {done}/{total} parts", end="", file=sys.stderr, flush=True)
