"""Command-line flags made from a pydantic settings model, so the flags and the fields are one list.

Each field becomes ``--field-name`` (dest: the field's name), typed from its annotation, with its
description as the help text: ``int``/``float``/``str`` (optional or not), ``bool`` as
``--name``/``--no-name``, ``Literal[...]`` as choices, and ``dict[str, X]`` as
``key=value,key=value``. Every flag defaults to None, meaning "not given": the model's own default
(or a settings file) then decides. A field of another type is refused when the parser is built,
so that a new field cannot silently go missing from the command line.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any

from pydantic import BaseModel


def add_model_flags(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    *,
    exclude: Collection[str] = (),
    extras: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Add one flag per field of ``model``.

    Args:
        parser: Where the flags go.
        model: The settings model; its field descriptions become the help texts.
        exclude: Fields that are not settings a user gives (e.g. a schema version).
        extras: Per field, keyword arguments for ``add_argument`` that the annotation cannot say
            (``choices`` kept elsewhere, ``metavar``); ``aliases`` adds more option strings.

    Returns:
        The names of the fields that became flags.

    Raises:
        TypeError: A field's type has no command-line form.
    """
    added = []
    for name, field in model.model_fields.items():
        if name in exclude:
            continue
        kwargs = _argument_for(name, field.annotation)
        default = None if field.is_required() or field.default_factory else field.default
        kwargs["help"] = _help(field.description, default)
        more = dict((extras or {}).get(name, {}))
        aliases = tuple(more.pop("aliases", ()))
        kwargs.update(more)
        parser.add_argument(*aliases, f"--{name.replace('_', '-')}", dest=name, default=None, **kwargs)
        added.append(name)
    return added


def given_settings(args: argparse.Namespace, fields: Collection[str]) -> dict[str, Any]:
    """The settings among ``fields`` that were given on the command line (not None)."""
    return {name: value for name in fields if (value := getattr(args, name, None)) is not None}


def _argument_for(name: str, annotation: Any) -> dict[str, Any]:
    inner = _without_none(annotation)
    origin = typing.get_origin(inner)
    if inner is bool:
        return {"action": argparse.BooleanOptionalAction}
    if inner in (int, float, str):
        return {"type": inner}
    if origin is typing.Literal:
        choices = typing.get_args(inner)
        return {"type": type(choices[0]), "choices": choices}
    if origin is dict:
        key_type, value_type = typing.get_args(inner)
        if key_type is str and value_type in (int, float, str):
            return {"type": _pairs(value_type), "metavar": "KEY=VALUE,..."}
    raise TypeError(f"the setting {name!r} ({annotation!r}) has no command-line form")


def _without_none(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _pairs(value_type: type) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        pairs: dict[str, Any] = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise argparse.ArgumentTypeError(f"{item!r}: write key=value pairs, e.g. good=1000,bad=350")
            try:
                pairs[key.strip()] = value_type(value.strip())
            except ValueError as exc:
                raise argparse.ArgumentTypeError(f"{item!r}: {exc}") from exc
        return pairs

    parse.__name__ = f"key=value list of {value_type.__name__}"  # named in argparse's messages
    return parse


def _help(description: str | None, default: Any) -> str:
    text = (description or "").strip()
    if default is not None and not isinstance(default, BaseModel):
        text += f" (default: {default})"
    # argparse formats help texts with %: a literal one must be doubled.
    return text.replace("%", "%%")


def ranged(
    kind: type[int] | type[float],
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Callable[[str], Any]:
    """An argparse ``type`` for a number within bounds (``ge``/``gt`` below, ``le`` above).

    Bounds checked by the parser are reported with the usage line and exit 2, like any other
    mistyped flag, before a command starts its work.
    """

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {'whole ' if kind is int else ''}number"
            ) from None
        if (
            (ge is not None and value < ge)
            or (gt is not None and value <= gt)
            or (le is not None and value > le)
        ):
            bounds = [f">= {ge:g}" if ge is not None else "", f"> {gt:g}" if gt is not None else "",
                      f"<= {le:g}" if le is not None else ""]  # fmt: skip
            raise argparse.ArgumentTypeError(
                f"{text} is out of range (must be {' and '.join(b for b in bounds if b)})"
            )
        return value

    parse.__name__ = kind.__name__
    return parse
