"""Errors meant for the person at the command line or the screen, as opposed to bugs.

A ``UserError`` says what was wrong with the input (a flag, a file, a name) in one sentence that
the user can act on; the command line prints it as ``inspector: <message>`` and exits with 2,
while anything else is a bug and keeps its traceback. It derives from ``ValueError`` so that code
which already catches bad values keeps working when a module moves its checks to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class UserError(ValueError):
    """Bad input from the user: ``str(error)`` is the one line to show them."""


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Re-raise the given exception types raised inside the block as ``UserError``.

    For calls whose failures of these types can only come from what the user typed (parsing a
    shift plan, a ``key=value`` list), so that the caller does not have to word them again.

    Args:
        kinds: The exception types to turn into ``UserError`` (default: ``ValueError``).
    """
    catch: tuple[type[BaseException], ...] = kinds or (ValueError,)
    try:
        yield
    except UserError:
        raise
    except catch as exc:
        # A KeyError's str() is the repr of its key: its first argument is the message.
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise UserError(message) from exc
