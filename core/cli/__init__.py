"""The ``inspector`` command line: one parser, each group of commands in its own module.

``main`` (the parser, ``COMMAND_MODULES``, the error policy, and for now ``demo`` and ``run``),
``synth`` (``generate``, ``feed``), ``training`` (``train``, ``evaluate``; the flags of ``train``
are made from ``TrainConfig`` by ``flags``), ``inference`` (``predict``, ``export``, ``bench``),
``storage`` (``log`` and the visual log's other commands), ``sources`` (``probe``). Heavy modules
load only when a command runs.
"""

from core.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
