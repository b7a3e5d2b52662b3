"""inspector core: everything without a GUI.

Data, training, inference, explanation, sources, storage, reports and the CLI live here.
This package never imports PySide6 or ``inspector_gui`` (checked by import-linter in CI), and
it imports torch lazily wherever torch is not needed, so ``inspector --help`` is instant and an
ONNX-only station can run without torch installed.
"""

__version__ = "0.1.0"
