"""The ``inspector`` command line: one parser, each group of commands in its own module.

``main`` (the parser, ``demo``, ``run``, ``train``, ``generate``, ``feed``), ``training``
(``evaluate``), ``inference`` (``predict``, ``export``, ``bench``), ``storage`` (the visual log's
commands), ``sources`` (``probe``). Heavy modules load only when a command runs.
"""

from core.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
