"""Lazy re-exports for a package's ``__init__``: its public names, imported on first use.

A package's face can then name everything it offers without importing torch, OpenCV or
SQLAlchemy when only one light module of it is wanted (``inspector --help`` stays instant).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` serving ``names`` (name -> submodule).

    Example::

        __getattr__, __dir__ = lazy_exports(__name__, {"Inspector": "inspector"})
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # once imported, a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
