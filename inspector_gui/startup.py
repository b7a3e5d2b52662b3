"""Start-up work with its progress in a window: the demo's first training, model loading, migrations.

``run_with_progress(job, title=...)`` runs ``job(progress, log)`` on a worker thread while a small
window shows what is happening, with a bar. ``progress(stage, done, total)`` is the same callback
the training and the demo already take (``core.common.progress``); ``log(message)`` shows a line
of text. The GUI thread only paints; the job's exception, if any, is raised again to the caller.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QEventLoop, QObject, QThread, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QProgressBar, QVBoxLayout, QWidget

from inspector_gui import theme

log = logging.getLogger(__name__)

T = TypeVar("T")
ProgressFn = Callable[[str, int, int], None]
LogFn = Callable[[str], None]
StartupJob = Callable[[ProgressFn, LogFn], Any]

STAGE_LABELS = {
    "generate": "Generating demo parts",
    "load": "Loading the training images",
    "train": "Training the model",
    "model": "Loading the model",
    "log": "Opening the visual log",
}


class _JobRunner(QObject):
    """Runs the job on the start-up thread; its progress and end cross to the GUI as signals."""

    progressed = Signal(str, int, int)
    logged = Signal(str)
    finished = Signal(object, object)  # result, exception

    def __init__(self, job: StartupJob) -> None:
        super().__init__()
        self._job = job
        self.thread_id: int | None = None

    @Slot()
    def run(self) -> None:
        self.thread_id = threading.get_ident()
        try:
            result = self._job(self.progressed.emit, self.logged.emit)
        except BaseException as exc:  # handed to the caller on the GUI thread
            self.finished.emit(None, exc)
        else:
            self.finished.emit(result, None)
        finally:
            thread = self.thread()
            if thread is not None:
                thread.quit()


class StartupDialog(QDialog):
    """What start-up is doing: a title, the current step, a bar and the last message."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("startupDialog")
        self.setWindowTitle(f"inspector — {title}")
        self.setStyleSheet(theme.STYLE_SHEET + _STYLE)
        self.setMinimumWidth(640)
        self._may_close = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(28, 24, 28, 24)
        layout.setSpacing(12)
        self.title = QLabel(title)
        self.title.setObjectName("startupTitle")
        self.step = QLabel("Starting…")
        self.step.setObjectName("startupStep")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until a step says how far it is
        self.bar.setFormat("%p %")
        self.message = QLabel("")
        self.message.setObjectName("startupMessage")
        self.message.setWordWrap(True)
        for widget in (self.title, self.step, self.bar, self.message):
            layout.addWidget(widget)
        self._stage = ""
        self._round = 0
        # What was shown, in order: (step text, bar value, bar maximum, painting thread id).
        self.shown: list[tuple[str, int, int, int]] = []

    @Slot(str, int, int)
    def show_progress(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage or (stage == "train" and done < self.bar.value()):
            self._round += 1 if stage == "train" else 0
        self._stage = stage
        label = STAGE_LABELS.get(stage, stage)
        if stage == "train":
            label = f"{label} (epoch {self._round})"
        self.step.setText(f"{label}: {done} of {total}" if total else label)
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
        else:
            self.bar.setRange(0, 0)
        self.shown.append((self.step.text(), self.bar.value(), self.bar.maximum(), threading.get_ident()))

    @Slot(str)
    def show_message(self, message: str) -> None:
        self.message.setText(message)

    def finish(self) -> None:
        self._may_close = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        # The work cannot be interrupted halfway (a model half trained is thrown away anyway);
        # the window stays until it is done, and says so.
        if self._may_close:
            event.accept()
            return
        self.message.setText("Start-up is still working; the window closes by itself when it is done.")
        event.ignore()

    def reject(self) -> None:  # Esc
        if self._may_close:
            super().reject()


class _Outcome(QObject):
    """Receives the job's end on the GUI thread (a QObject slot, so the call is queued there)."""

    def __init__(self, loop: QEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self.result: Any = None
        self.error: BaseException | None = None

    @Slot(object, object)
    def on_runner_finished(self, result: Any, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self._loop.exit(0)


def run_with_progress(
    job: Callable[[ProgressFn, LogFn], T],
    *,
    title: str,
    on_dialog: Callable[[StartupDialog], None] | None = None,
) -> T:
    """Run ``job(progress, log)`` on a worker thread while a window shows its progress.

    A ``QApplication`` must exist. ``on_dialog`` receives the window once it exists (tests,
    screenshots). Returns the job's result; raises its exception.
    """
    app = QApplication.instance()
    if app is None:
        raise RuntimeError("run_with_progress needs a QApplication")
    dialog = StartupDialog(title)
    if on_dialog is not None:
        on_dialog(dialog)
    runner = _JobRunner(job)
    thread = QThread()
    thread.setObjectName("startup")
    runner.moveToThread(thread)
    runner.progressed.connect(dialog.show_progress)
    runner.logged.connect(dialog.show_message)
    loop = QEventLoop()
    receiver = _Outcome(loop)
    runner.finished.connect(receiver.on_runner_finished)
    thread.started.connect(runner.run)
    dialog.show()
    thread.start()
    try:
        loop.exec()
    finally:
        thread.quit()
        thread.wait()
        dialog.finish()
        dialog.deleteLater()
    if receiver.error is not None:
        raise receiver.error
    return receiver.result  # type: ignore[no-any-return]


_STYLE = f"""
QLabel#startupTitle {{ font-size: 26px; font-weight: 700; }}
QLabel#startupStep {{ font-size: 18px; }}
QLabel#startupMessage {{ color: {theme.TEXT_MUTED}; font-size: 16px; }}
QProgressBar {{
    background: {theme.PANEL_RAISED}; border: 1px solid {theme.BORDER}; border-radius: 4px;
    min-height: 26px; text-align: center; font-size: 15px;
}}
QProgressBar::chunk {{ background: #0072B2; border-radius: 3px; }}
"""
