"""``inspector probe``: commission a source without a model or a log.

Opens the source as the station would, takes parts for a while and reports what it saw: the
source's state changes (camera offline, reconnects), frames, parts and their rate, and overflow.
Nothing is moved or recorded: hot-folder files stay in the inbox.
"""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("probe", help="open a source for a while and report frames, parts and outages")
    p.add_argument("source", help="hotfolder:DIR, camera:INDEX_OR_URL, video:FILE or genicam:CTI[#SERIAL]")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to watch (default 10)")
    p.add_argument(
        "--trigger", choices=("presence", "every-frame"), help="cameras: which frames become parts"
    )
    p.set_defaults(handler=_cmd_probe)


def _cmd_probe(args: argparse.Namespace) -> int:
    from core.sources import open_source

    options = {"trigger": args.trigger} if args.trigger else {}
    source = open_source(args.source, **options)
    print(f"probing {source.description} for {args.seconds:g} s", file=sys.stderr)
    started = time.monotonic()
    last_state: tuple[bool, str] | None = None
    parts = errors = 0
    try:
        while time.monotonic() - started < args.seconds:
            part = source.next_part(0.1)
            if part is not None:
                parts += 1
                if part.error is not None:
                    errors += 1
                    print(f"  not inspectable: {part.source_ref}: {part.error}")
                else:
                    shape = (
                        "x".join(str(n) for n in part.image.shape[:2][::-1])
                        if part.image is not None
                        else "-"
                    )
                    print(f"  part {part.source_ref} ({shape})")
                # Neither acknowledged nor released: a hot-folder file stays in the inbox.
            status = source.status()
            if status.state != last_state:
                last_state = status.state
                print(f"{time.monotonic() - started:6.2f} s  {status.message}", file=sys.stderr)
            if status.finished:
                break
    finally:
        status = source.status()
        source.close()
    elapsed = max(1e-9, time.monotonic() - started)
    print(
        f"{status.frames} frames ({status.frames / elapsed:.1f}/s), {parts} parts ({errors} not inspectable), "
        f"{status.overflowed} overflowed, {status.reconnects} reconnects, "
        f"{'online' if status.online else 'offline'} at the end",
        file=sys.stderr,
    )
    return 0
