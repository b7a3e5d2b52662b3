"""Commands that make synthetic parts: ``generate`` (a labelled folder) and ``feed`` (a hot folder)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from core.cli.flags import ranged

_SIZE = ranged(int, ge=32)
_COUNT = ranged(int, ge=0)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``generate`` and ``feed`` to the ``inspector`` parser."""
    p = sub.add_parser("generate", help="write a labelled folder of synthetic parts (good/, bad/)")
    p.add_argument("out", type=Path)
    p.add_argument("--good", type=_COUNT, default=100, help="good parts to write (default 100)")
    p.add_argument("--bad", type=_COUNT, default=100, help="bad parts to write (default 100)")
    p.add_argument("--size", type=_SIZE, default=1024, help="image side in pixels (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_cmd_generate)

    p = sub.add_parser("feed", help="feed synthetic parts into a hot folder at a given rate")
    p.add_argument("inbox", type=Path)
    p.add_argument("--rate", type=ranged(float, gt=0), default=2.0, metavar="HZ", help="parts per second")
    p.add_argument("--count", type=_COUNT, help="stop after this many parts (default: until Ctrl+C)")
    p.add_argument("--size", type=_SIZE, default=1024, help="image side in pixels (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bad-fraction", type=ranged(float, ge=0, le=1), default=0.2, help="share of bad parts")
    p.set_defaults(handler=_cmd_feed)


def _cmd_generate(args: argparse.Namespace) -> int:
    from core.common.progress import ProgressBars
    from core.synth.dataset import generate_dataset

    bars = ProgressBars()
    try:
        paths = generate_dataset(
            args.out, n_good=args.good, n_bad=args.bad, size=args.size, seed=args.seed,
            progress=lambda d, t: bars("generate", d, t),
        )  # fmt: skip
    finally:
        bars.close()
    print(f"wrote {len(paths)} parts to {args.out}")
    return 0


def _cmd_feed(args: argparse.Namespace) -> int:
    from core.synth.feeder import feed_hot_folder

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        n = feed_hot_folder(
            args.inbox, rate_hz=args.rate, count=args.count, seed=args.seed,
            bad_fraction=args.bad_fraction, size=args.size, stop=stop,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"fed {n} parts into {args.inbox}")
    return 0
