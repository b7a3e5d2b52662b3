"""The ``inspector`` command line: the parser, the command groups (``COMMAND_MODULES``), ``main``
and its error policy. Heavy modules (torch, OpenCV, Qt) load only when a command runs."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path


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

    # Each module of COMMAND_MODULES has ``register(sub)`` adding its parsers with
    # ``set_defaults(handler=fn)``; it must import heavy modules (torch, OpenCV) only in handlers.
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# The command groups, one module per job, in the order ``inspector --help`` lists them.
COMMAND_MODULES = (
    "core.cli.synth",  # generate, feed
    "core.cli.training",  # train, evaluate
    "core.cli.inference",  # predict, export, bench
    "core.cli.storage",  # log, verify-log, report, backup, prune, users, shifts, review, keep
    "core.cli.sources",  # probe
)


def _version() -> str:
    from core import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Run one ``inspector`` command; returns the exit status.

    The error policy: an error meant for the user (see ``is_user_error``) is one line,
    ``inspector: <message>`` on stderr, and status 2 (as for a mistyped flag); anything else is a
    bug: its traceback goes to stderr and the status is 1. ``INSPECTOR_TRACEBACK=1`` shows the
    traceback of user errors too. Ctrl+C ends a command with 130.
    """
    args = build_parser().parse_args(argv)
    handler = getattr(args, "handler", None) or globals()[f"_cmd_{args.command}"]
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not is_user_error(exc):
            traceback.print_exc()
            print(
                f"inspector: internal error in {args.command!r} (a bug; the traceback is above)",
                file=sys.stderr,
            )
            return 1
        if os.environ.get("INSPECTOR_TRACEBACK"):
            traceback.print_exc()
        print(f"inspector: {user_message(exc)}", file=sys.stderr)
        return 2


# Errors meant for users, by module and name: looked up among the modules already imported, so
# that checking an error imports nothing (an error of a class comes with its module loaded).
USER_ERRORS = (
    ("core.common.errors", "UserError"),  # bad input, said by our own code
    ("core.model.bundle", "BundleError"),  # a model bundle refused (missing, altered, too new)
    ("core.imaging.decode", "DecodeError"),  # a file that is not a readable image
    ("core.storage.errors", "StorageError"),  # the environment refused the log (disk, lock, ...)
    ("core.storage.errors", "NotAllowedError"),  # a user without the right for a review or keep
    ("core.storage.migrate", "SchemaVersionError"),  # a log written by a newer version
    ("core.sources.live", "SourceError"),  # a camera or driver that cannot be opened
    ("pydantic", "ValidationError"),  # settings (a config file, flags) that break the schema
)
_OS_USER_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is for the user to fix (bad input, missing file, refused bundle, full disk)."""
    if isinstance(exc, _OS_USER_ERRORS):
        return True
    for module_name, class_name in USER_ERRORS:
        kind = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(kind, type) and isinstance(exc, kind):
            return True
    return False


def user_message(exc: BaseException) -> str:
    """``exc`` as one line for the user."""
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or exc}: {exc.filename}"
    elif type(exc).__name__ == "ValidationError" and hasattr(exc, "errors"):  # pydantic's
        problems = [f"{'.'.join(str(x) for x in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        text = f"invalid {getattr(exc, 'title', 'settings')}: " + "; ".join(problems)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


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


if __name__ == "__main__":
    sys.exit(main())
