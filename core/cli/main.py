"""The ``inspector`` command line: the parser, the command groups (``COMMAND_MODULES``), ``main``
and its error policy. Heavy modules (torch, OpenCV, Qt) load only when a command runs."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspector", description="Visual inspection station: CNN verdicts with Grad-CAM heatmaps."
    )
    parser.add_argument("--version", action="version", version=f"inspector {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # Each module of COMMAND_MODULES has ``register(sub)`` adding its parsers with
    # ``set_defaults(handler=fn)``; it must import heavy modules (torch, OpenCV) only in handlers.
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# The command groups, one module per job, in the order ``inspector --help`` lists them.
COMMAND_MODULES = (
    "core.cli.station",  # demo, run
    "core.cli.synth",  # generate, feed
    "core.cli.training",  # train, evaluate
    "core.cli.inference",  # predict, export, bench
    "core.cli.storage",  # log, verify-log, report, backup, prune, users, shifts, review, keep
    "core.cli.export",  # export-labelled
    "core.cli.threshold",  # threshold what-if, set, history, rollback
    "core.cli.sources",  # probe
    "core.cli.doctor",  # doctor
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


# Packages of the optional extras: missing one is an install choice, not a bug.
EXTRA_OF_MODULE = {
    "torch": "train", "torchvision": "train", "pytorch_grad_cam": "train", "onnx": "train",
    "sklearn": "train", "matplotlib": "train", "safetensors": "train", "scipy": "train",
    "PySide6": "gui", "pyqtgraph": "gui", "paho": "mqtt", "psycopg": "postgres", "harvesters": "genicam",
}  # fmt: skip


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is for the user to fix (bad input, missing file, refused bundle, full disk,
    a command that needs an extra that this install left out)."""
    if isinstance(exc, _OS_USER_ERRORS) or _missing_extra(exc) is not None:
        return True
    for module_name, class_name in USER_ERRORS:
        kind = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(kind, type) and isinstance(exc, kind):
            return True
    return False


def user_message(exc: BaseException) -> str:
    """``exc`` as one line for the user."""
    extra = _missing_extra(exc)
    if extra is not None:
        text = f"this needs {exc.name}, which this install leaves out: pip install 'inspector[{extra}]'"  # type: ignore[attr-defined]
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or exc}: {exc.filename}"
    elif type(exc).__name__ == "ValidationError" and hasattr(exc, "errors"):  # pydantic's
        problems = [f"{'.'.join(str(x) for x in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        text = f"invalid {getattr(exc, 'title', 'settings')}: " + "; ".join(problems)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _missing_extra(exc: BaseException) -> str | None:
    """The extra whose package ``exc`` (a ModuleNotFoundError) misses, or None."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    return EXTRA_OF_MODULE.get(exc.name.partition(".")[0])


if __name__ == "__main__":
    sys.exit(main())
