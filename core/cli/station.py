"""``inspector demo`` and ``inspector run``: the station, with or without its window.

Both build one ``StationConfig`` (a ``--config`` JSON file, ``INSPECTOR_<FIELD>`` variables, then
the flags given) and run the station's one run loop (``core.station.loop``): headless through
``run_headless``, or in the window, whose worker runs the same loop.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.login import add_login_flags, login
from core.common.errors import UserError, user_errors

if TYPE_CHECKING:
    from core.station.config import StationConfig
    from core.station.loop import LoopRuntime


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _add_demo(sub)
    _add_run(sub)


def _add_demo(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    p.set_defaults(handler=_cmd_demo)


def _add_run(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the station on a source with a model")
    p.add_argument(
        "--config", type=Path, metavar="JSON",
        help="station configuration file (fields of StationConfig); INSPECTOR_<FIELD> and flags override it",
    )  # fmt: skip
    p.add_argument("--source", help="hotfolder:DIR, camera:INDEX_OR_URL, video:FILE or genicam:CTI[#SERIAL]")
    p.add_argument("--model", type=Path, help="model bundle folder")
    p.add_argument(
        "--db", metavar="URL", help="SQLAlchemy URL of the visual log (default: SQLite in the data dir)"
    )
    p.add_argument("--station", help="station name recorded with every decision (default station-1)")
    p.add_argument(
        "--threshold", type=float,
        help="change the bad-probability threshold before starting (a supervisor's log-in: --user;"
        " default: the one last recorded, else the model's)",
    )  # fmt: skip
    p.add_argument("--reason", help="why the --threshold (recorded with it)")
    add_login_flags(p, required=False)
    p.add_argument("--device", help="auto (the default), cpu or cuda")
    p.add_argument("--headless", action="store_true", help="no window: one JSON line per part on stdout")
    p.add_argument("--quit-after", type=int, metavar="N", help="exit after N parts")
    p.add_argument(
        "--output", action="append", metavar="SPEC",
        help="jsonl (one JSON line per part on stdout, the default), mqtt://HOST[:PORT][/TOPIC] or none; repeatable",
    )  # fmt: skip
    p.add_argument(
        "--summary-s", type=float, metavar="S", help="summary on stderr every S s (0: off; default 10)"
    )
    p.add_argument(
        "--trigger", choices=("presence", "every-frame"), help="cameras: which frames become parts"
    )
    p.set_defaults(handler=_cmd_run)


def _fatal_start_errors() -> tuple[type[BaseException], ...]:
    """Start-up errors that no retry mends: a refused model bundle (missing, altered, too new), or
    an inbox that another station holds (two stations on one inbox would both take its files)."""
    from core.model.bundle import BundleError
    from core.sources.inbox_lock import InboxLockedError

    return (BundleError, InboxLockedError)


def _run_headless(config: StationConfig) -> int:
    from core.station.headless import run_headless

    return run_headless(config, fatal_errors=_fatal_start_errors())


def _run_gui(
    config: StationConfig,
    *,
    title: str,
    screenshot: Path | None,
    prepare: Callable[[Callable[[str, int, int], None], Callable[[str], None]], object] | None = None,
) -> int:
    # core does not import the GUI: the GUI package registers its launcher as an entry point.
    from importlib.metadata import entry_points

    from core.station.loop import LoopSettings
    from core.station.runtime import build_runtime

    found = list(entry_points(group="inspector.gui", name="station"))
    if not found:
        raise UserError("the GUI (inspector_gui) is not installed; use --headless")
    run_station: Callable[..., int] = found[0].load()

    def factory() -> LoopRuntime:
        return build_runtime(config)

    return int(
        run_station(
            factory,
            settings=LoopSettings.from_config(config),
            title=title,
            quit_after=config.max_parts,
            screenshot=screenshot,
            prepare=prepare,
            config=config,
        )
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from core.demo.line import DemoFeeder, demo_inbox, demo_model_dir, ensure_demo_model
    from core.station.config import StationConfig

    inbox = demo_inbox()
    # The demo's own settings; the environment may not redirect it to another source or model.
    config = StationConfig(
        source=f"hotfolder:{inbox}",
        model=demo_model_dir(),
        db_url=args.db,
        station_name="demo",
        max_parts=args.quit_after,
    )
    feeder = DemoFeeder(inbox, rate_hz=args.rate)

    def prepare(progress: Callable[[str, int, int], None], log: Callable[[str], None]) -> None:
        # The first start trains the demo model (about a minute): in the window, its progress is
        # shown there; the feed starts once the model is ready, so no backlog piles up.
        def say(message: str) -> None:
            print(message, file=sys.stderr)  # the terminal keeps the record too
            log(message)

        ensure_demo_model(progress=progress, retrain=args.retrain, log=say)
        feeder.start()
        say(f"demo: watching {inbox} (parts fed at {args.rate:g}/s)")

    try:
        if args.headless:
            from core.common.progress import ProgressBars

            bars = ProgressBars(enabled=True)
            try:
                prepare(bars, lambda _m: None)  # say() prints it already
            finally:
                bars.close()
            return _run_headless(config)
        return _run_gui(config, title="demo", screenshot=args.screenshot, prepare=prepare)
    finally:
        feeder.stop()


def _record_start_threshold(config: StationConfig, args: argparse.Namespace) -> None:
    """Record ``--threshold`` as a logged-in user's change before the station starts (it starts at
    the threshold last recorded; a name alone no longer changes it)."""
    from core.storage import VisualLog

    with VisualLog(config.db_url, media_root=config.media_root, station=config.station_name) as log:
        old = log.current_threshold()
        if old is not None and abs(old - args.threshold) <= 1e-12:
            return
        changes = log.threshold_changes()
        model_hash = next((c.model_hash for c in reversed(changes) if c.model_hash), None)
        actor = login(log, args)
        with user_errors(ValueError):  # a threshold outside 0..1
            log.record_threshold_change(
                old,
                args.threshold,
                actor=actor,
                reason=args.reason or "set at start (inspector run --threshold)",
                model_hash=model_hash,
            )


def _cmd_run(args: argparse.Namespace) -> int:
    from core.station.config import StationConfig

    outputs = None
    if args.output:
        outputs = [o for o in args.output if o != "none"]
    flags: dict[str, Any] = {
        "source": args.source,
        "model": args.model,
        "db_url": args.db,
        "station_name": args.station,
        "threshold": args.threshold,
        "device": args.device,
        "max_parts": args.quit_after,
        "outputs": outputs,
        "summary_s": args.summary_s,
        "source_options": {"trigger": args.trigger} if args.trigger else None,
    }
    config = StationConfig.load(args.config, **flags)
    if args.threshold is not None:
        _record_start_threshold(config, args)
    if args.headless:
        return _run_headless(config)
    return _run_gui(config, title=config.station_name, screenshot=None)
