"""The ``inspector`` command line. Heavy modules (torch, OpenCV, Qt) load only when a command runs."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import signal
import sys
import threading
from pathlib import Path

from core.model.architectures import ARCHITECTURES  # names only: torch is imported when a net is built


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the operator station on built-in generated parts (no data needed)")
    p.add_argument("--quit-after", type=int, metavar="N", help="exit after N parts (smoke tests)")
    p.add_argument(
        "--rate", type=float, default=2.0, metavar="HZ", help="parts per second fed to the demo hot folder"
    )
    p.add_argument("--headless", action="store_true", help="no window: one JSON line per part on stdout")
    p.add_argument("--retrain", action="store_true", help="train the demo model again even if one is cached")
    p.add_argument(
        "--db", metavar="URL", help="SQLAlchemy URL of the visual log (default: SQLite in the data dir)"
    )
    p.add_argument(
        "--screenshot", type=Path, metavar="PNG", help="save a picture of the window before quitting"
    )


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the station on a source with a model")
    p.add_argument(
        "--source",
        required=True,
        help="hotfolder:DIR, camera:INDEX_OR_URL, video:FILE or genicam:CTI[#SERIAL]",
    )
    p.add_argument("--model", required=True, type=Path, help="model bundle folder")
    p.add_argument(
        "--db", metavar="URL", help="SQLAlchemy URL of the visual log (default: SQLite in the data dir)"
    )
    p.add_argument("--station", default="station-1", help="station name recorded with every decision")
    p.add_argument("--threshold", type=float, help="bad-probability threshold (default: the model's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--headless", action="store_true", help="no window: one JSON line per part on stdout")
    p.add_argument("--quit-after", type=int, metavar="N", help="exit after N parts")
    p.add_argument(
        "--output", action="append", metavar="SPEC",
        help="jsonl (one JSON line per part on stdout, the default), mqtt://HOST[:PORT][/TOPIC] or none; repeatable",
    )  # fmt: skip
    p.add_argument(
        "--summary-s", type=float, default=10.0, metavar="S", help="summary on stderr every S s (0: off)"
    )
    p.add_argument(
        "--trigger", choices=("presence", "every-frame"), help="cameras: which frames become parts"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspector", description="Visual inspection station: CNN verdicts with Grad-CAM heatmaps."
    )
    parser.add_argument("--version", action="version", version=f"inspector {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    _add_run(sub)

    p = sub.add_parser("generate", help="write a labelled folder of synthetic parts (good/, bad/)")
    p.add_argument("out", type=Path)
    p.add_argument("--good", type=int, default=100)
    p.add_argument("--bad", type=int, default=100)
    p.add_argument("--size", type=int, default=1024, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("feed", help="feed synthetic parts into a hot folder at a given rate")
    p.add_argument("inbox", type=Path)
    p.add_argument("--rate", type=float, default=2.0, metavar="HZ")
    p.add_argument("--count", type=int, help="stop after this many parts (default: until Ctrl+C)")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bad-fraction", type=float, default=0.2)

    p = sub.add_parser("train", help="train a model bundle from a folder of class folders")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="run folder; the bundle is written here")
    p.add_argument("--config", type=Path, help="JSON file of training settings (flags override it)")
    p.add_argument(
        "--arch",
        dest="architecture",
        choices=ARCHITECTURES,
        help="default mobilenet_v3_large; fullres_cnn keeps the full resolution in its first layer "
        "(pits of a few pixels; use --input-size 300 for the camera's size)",
    )
    p.add_argument("--input-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--no-augment", dest="augment", action="store_const", const=False)
    p.add_argument("--class-map", help="folder=class pairs, e.g. ok_front=good,def_front=bad")
    p.add_argument(
        "--sample-per-class",
        help="train/validate on a seeded sample, e.g. good=1000,bad=350; the rest is the test split",
    )
    p.add_argument("--val-fraction", type=float)
    p.add_argument("--test-fraction", type=float)
    p.add_argument("--patience", type=int)
    p.add_argument("--max-minutes", type=float, help="stop after the epoch that ends past this many minutes")
    p.add_argument("--threads", type=int)
    p.add_argument(
        "--augment-threads",
        type=int,
        help="threads augmenting the next batch (default: 8 on a GPU, 0 on the CPU)",
    )
    p.add_argument(
        "--focal-gamma", type=float, help="focal loss with this gamma (e.g. 2); default: cross-entropy"
    )
    p.add_argument(
        "--normalisation",
        choices=("fixed", "per_image"),
        help="per_image: each picture to mean 0, std 1, so brightness says nothing (default fixed)",
    )
    p.add_argument(
        "--synthetic-spots",
        type=float,
        help="share of good training images given small dark pits and trained as bad (e.g. 0.15)",
    )
    p.add_argument(
        "--init-from",
        help="model bundle to start from instead of fresh weights (same architecture; use a lower --lr)",
    )
    p.add_argument(
        "--pooling",
        choices=("avg", "max"),
        help="global pooling: max lets one small defect decide (default avg)",
    )
    p.add_argument(
        "--split-from",
        help="split.json of an earlier run: train and validate on the same parts (compare recipes fairly)",
    )
    p.add_argument(
        "--augment-size",
        type=int,
        help="hold and augment training images at this side (e.g. the camera's 300), then shrink to the input",
    )
    p.add_argument(
        "--scale-jitter", type=float, help="augmentation also zooms by up to this fraction (e.g. 0.08)"
    )
    p.add_argument(
        "--views",
        type=int,
        choices=(1, 4, 8),
        help="views of each part averaged (flips, transposes); default 1",
    )

    p = sub.add_parser("log", help="show the newest decisions of the visual log")
    p.add_argument("--db", metavar="URL")
    p.add_argument("--station", default=None)
    p.add_argument("--last", type=int, default=20)

    # Command groups that live with their layer. Each module has ``register(sub)`` adding its
    # parsers with ``set_defaults(handler=fn)``; it must import heavy modules only in handlers.
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(sub)
    return parser


COMMAND_MODULES = ("core.cli.storage", "core.cli.inference", "core.cli.sources", "core.cli.training")


def _version() -> str:
    from core import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = getattr(args, "handler", None) or globals()[f"_cmd_{args.command}"]
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"inspector {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _run_headless(factory, quit_after: int | None, *, outputs=None, summary_s: float = 10.0) -> int:  # type: ignore[no-untyped-def]
    """Run a runtime on this thread until SIGINT/SIGTERM, ``quit_after`` parts or the source's end."""
    from core.station.runtime import run_headless

    return run_headless(
        factory, quit_after=quit_after, outputs=outputs or ["jsonl"], summary_every_s=summary_s
    )


def _run_gui(factory, *, title: str, quit_after: int | None, screenshot: Path | None) -> int:  # type: ignore[no-untyped-def]
    # core does not import the GUI: the GUI package registers its launcher as an entry point.
    from importlib.metadata import entry_points

    found = list(entry_points(group="inspector.gui", name="station"))
    if not found:
        raise RuntimeError("the GUI (inspector_gui) is not installed; use --headless")
    run_station = found[0].load()
    return int(run_station(factory, title=title, quit_after=quit_after, screenshot=screenshot))


def _cmd_demo(args: argparse.Namespace) -> int:
    from core.common.progress import ProgressBars
    from core.demo.line import DemoFeeder, demo_inbox, ensure_demo_model

    bars = ProgressBars(enabled=sys.stderr.isatty() or True)
    try:
        model = ensure_demo_model(
            progress=bars, retrain=args.retrain, log=lambda m: print(m, file=sys.stderr)
        )
    finally:
        bars.close()
    inbox = demo_inbox()
    feeder = DemoFeeder(inbox, rate_hz=args.rate).start()
    print(f"demo: watching {inbox} (parts fed at {args.rate:g}/s)", file=sys.stderr)

    def factory():  # type: ignore[no-untyped-def]
        from core.station.runtime import build_runtime

        return build_runtime(
            f"hotfolder:{inbox}", model, db_url=args.db, station_name="demo", max_parts=args.quit_after
        )

    try:
        if args.headless:
            return _run_headless(factory, args.quit_after)
        return _run_gui(factory, title="demo", quit_after=args.quit_after, screenshot=args.screenshot)
    finally:
        feeder.stop()


def _cmd_run(args: argparse.Namespace) -> int:
    def factory():  # type: ignore[no-untyped-def]
        from core.station.runtime import build_runtime

        device = None if args.device == "auto" else args.device
        return build_runtime(
            args.source,
            args.model,
            db_url=args.db,
            station_name=args.station,
            device=device,
            threshold=args.threshold,
            source_options={"trigger": args.trigger} if args.trigger else None,
        )

    if args.headless:
        outputs = [o for o in (args.output or ["jsonl"]) if o != "none"]
        return _run_headless(factory, args.quit_after, outputs=outputs, summary_s=args.summary_s)
    return _run_gui(factory, title=args.station, quit_after=args.quit_after, screenshot=None)


def _cmd_generate(args: argparse.Namespace) -> int:
    from core.common.progress import ProgressBars
    from core.synth.parts import generate_dataset

    bars = ProgressBars()
    paths = generate_dataset(
        args.out, n_good=args.good, n_bad=args.bad, size=args.size, seed=args.seed,
        progress=lambda d, t: bars("generate", d, t),
    )  # fmt: skip
    bars.close()
    print(f"wrote {len(paths)} parts to {args.out}")
    return 0


def _cmd_feed(args: argparse.Namespace) -> int:
    from core.synth.parts import feed_hot_folder

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        n = feed_hot_folder(
            args.inbox, rate_hz=args.rate, count=args.count, seed=args.seed,
            bad_fraction=args.bad_fraction, size=args.size, stop=stop,
        )  # fmt: skip
    except KeyboardInterrupt:
        stop.set()
        return 130
    print(f"fed {n} parts into {args.inbox}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from core.common.progress import ProgressBars
    from core.training.fit import TrainConfig, train

    settings: dict[str, object] = {}
    if args.config:
        settings.update(json.loads(args.config.read_text(encoding="utf-8")))
    # A flag given on the command line overrides the file; each flag is named after its field
    # (the two lists of pairs are parsed below).
    for key in TrainConfig.model_fields.keys() - {"class_map", "sample_per_class"}:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    if args.class_map:
        settings["class_map"] = dict(pair.split("=", 1) for pair in args.class_map.split(","))
    if args.sample_per_class:
        settings["sample_per_class"] = {
            k: int(v) for k, v in (p.split("=", 1) for p in args.sample_per_class.split(","))
        }
    settings.setdefault("name", args.out.name)
    config = TrainConfig.model_validate(settings)
    bars = ProgressBars()
    try:
        card = train(config, args.data_dir, args.out, progress=bars, log=lambda m: (bars.close(), print(m)))
    finally:
        bars.close()
    print(f"model bundle: {args.out} (threshold {card.threshold:.4f}, weights {card.short_hash})")
    return 0


def _cmd_log(args: argparse.Namespace) -> int:
    from core.storage import VisualLog

    with VisualLog(args.db, station=args.station or "demo") as visual_log:
        for d in visual_log.latest(args.last):
            score = "  -   " if d.score is None else f"{d.score:.4f}"
            print(
                f"{d.created_at:%Y-%m-%d %H:%M:%S}  {d.verdict.value:<13} {score}  {d.source_ref}  {d.reason or ''}"
            )
        counts = visual_log.counts()
        print(", ".join(f"{v.value}: {n}" for v, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
