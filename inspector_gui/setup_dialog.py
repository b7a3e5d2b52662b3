"""The station's set-up dialog: source, model bundle, visual log, station name, expected pace.

Nothing is saved until all of it has been checked the way the station will use it, on a worker
thread (a model can take seconds to load, a camera seconds to answer) while the dialog shows
that it is checking:

- the model bundle loads (card, weights hash, a backend that runs it: ``doctor_station.check_model``);
- a hot folder exists and the station may write to it, a camera or video delivers a frame
  (``doctor_station.check_source``);
- the visual log is reachable and writable (``doctor_station.check_database``), and then opened
  for real, which creates it or brings its schema to the newest revision.

A problem is shown in plain words under its field (with the fix), and the others are still
checked, so the operator sees everything that is wrong at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.common.paths import default_db_path
from core.station.config import StationConfig
from inspector_gui import theme
from inspector_gui.station_settings import save_station_config

log = logging.getLogger(__name__)

SOURCE_KINDS = {
    "hotfolder": "Hot folder (image files)",
    "camera": "Camera (index or stream URL)",
    "video": "Video file or URL",
}
DEFAULT_EXPECTED_INTERVAL_S = 60.0
FIELDS = ("station_name", "source", "model", "database", "expected_interval")


@dataclass(frozen=True, slots=True, kw_only=True)
class SetupValues:
    """What the operator entered (text as typed; paths not resolved yet)."""

    station_name: str
    source_kind: str
    source_target: str
    model: str
    database: str
    expected_interval_s: float

    @property
    def source_spec(self) -> str:
        return f"{self.source_kind}:{self.source_target.strip()}"

    @property
    def db_url(self) -> str:
        """A URL as typed, or a SQLite URL for a plain file path."""
        text = self.database.strip()
        if "://" in text:
            return text
        return f"sqlite:///{Path(text).expanduser().absolute()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SetupCheck:
    """The result of checking a set-up: a problem per field (empty when it may start)."""

    problems: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)  # what was found where all is well

    @property
    def ok(self) -> bool:
        return not self.problems


def _fail_text(check: Any) -> str:
    detail = check.detail.rstrip(".")
    detail = detail[:1].upper() + detail[1:]
    return f"{detail}. Fix: {check.fix}." if check.fix else f"{detail}."


def check_setup(values: SetupValues, *, source_timeout_s: float = 5.0) -> SetupCheck:
    """Check a set-up as the station would use it (blocking: run it off the GUI thread).

    Returns:
        The problem of each field that has one, in plain words with the fix.
    """
    from core.station.doctor import Status
    from core.station.doctor_station import check_model, check_source

    problems: dict[str, str] = {}
    details: dict[str, str] = {}
    if not values.station_name.strip():
        problems["station_name"] = "Give the station a name (it is recorded with every part)."
    if values.expected_interval_s < 0:
        problems["expected_interval"] = "The expected time between parts cannot be negative (0: no alarm)."

    if not values.source_target.strip():
        problems["source"] = {
            "hotfolder": "Choose the folder the camera writes its pictures to.",
            "camera": "Give the camera's index (0 for the first) or its stream URL.",
            "video": "Choose a video file or give its URL.",
        }.get(values.source_kind, "Choose a source.")
    elif (
        values.source_kind == "video"
        and "://" not in values.source_target
        and not Path(values.source_target).expanduser().is_file()
    ):
        problems["source"] = f"The video file {values.source_target} does not exist."
    if "source" not in problems:
        source_check = check_source(values.source_spec, timeout_s=source_timeout_s)
        if source_check.status is Status.FAIL:
            problems["source"] = _fail_text(source_check)
        else:
            details["source"] = source_check.detail

    if not values.model.strip():
        problems["model"] = "Choose the model bundle folder (trained, or exported to ONNX)."
    else:
        model_check = check_model(Path(values.model.strip()).expanduser())
        if model_check.status is Status.FAIL:
            problems["model"] = _fail_text(model_check)
        else:
            details["model"] = model_check.detail

    if not values.database.strip():
        problems["database"] = "Give the visual log: a SQLite file, or a database URL."
    else:
        problem = _check_log(values.db_url)
        if problem:
            problems["database"] = problem
        else:
            details["database"] = "reachable, writable, schema current"
    return SetupCheck(problems=problems, details=details)


def _check_log(url: str) -> str | None:
    """Why the visual log at ``url`` cannot be used, or None once it is open at the newest schema."""
    from core.station.doctor import Status, one_line
    from core.station.doctor_station import check_database
    from core.storage import VisualLog

    try:
        check = check_database(url)
    except Exception as exc:  # a URL SQLAlchemy cannot even parse
        return f"Not a database URL or file: {one_line(exc)}"
    if check.status is Status.FAIL:
        return _fail_text(check)
    try:
        # Opening creates the file or migrates its schema, as the station will at start.
        VisualLog(url).close()
    except Exception as exc:
        return f"The visual log cannot be opened: {one_line(exc)}"
    return None


class _SetupChecker(QObject):
    """Runs ``check_setup`` on the dialog's checking thread."""

    finished = Signal(object, object)  # SetupValues, SetupCheck

    @Slot(object)
    def run(self, values: SetupValues) -> None:
        try:
            result = check_setup(values)
        except Exception as exc:  # a bug in a check: say so rather than hang the dialog
            log.exception("checking the set-up failed")
            result = SetupCheck(problems={"source": f"The check itself failed: {exc}"})
        self.finished.emit(values, result)


class SetupDialog(QDialog):
    """Set up (or change) the station; accepted only once the set-up checked out and was saved.

    Args:
        config_file: Where the set-up is saved.
        initial: The current set-up, to change (its other fields are kept); None for a first run.

    Attributes:
        config: The saved ``StationConfig`` once accepted.

    Signals:
        checked(SetupCheck): a check finished (shown in the dialog).
    """

    checked = Signal(object)
    _check_requested = Signal(object)

    def __init__(
        self, config_file: Path, *, initial: StationConfig | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("setupDialog")
        self.setWindowTitle("inspector — set up the station")
        self.setStyleSheet(theme.STYLE_SHEET + _DIALOG_STYLE)
        self.config_file = config_file
        self.initial = initial
        self.config: StationConfig | None = None
        self.last_check: SetupCheck | None = None
        self._checking = False
        self._closed = False

        self._thread = QThread(self)
        self._thread.setObjectName("setup-check")
        self._checker = _SetupChecker()
        self._checker.moveToThread(self._thread)
        self._check_requested.connect(self._checker.run)
        self._checker.finished.connect(self._on_checker_finished)
        # The thread runs only while a check does: a dialog dropped between checks (a window
        # closed, a test that ends) never destroys a running QThread.
        self._build()
        self._fill(initial)

    # -- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(24, 20, 24, 20)
        root.setSpacing(12)
        title = QLabel("Set up the station")
        title.setObjectName("setupTitle")
        intro = QLabel(
            "Where the parts come from, the model that inspects them and where every decision is "
            "recorded. Everything is checked before the station starts."
        )
        intro.setWordWrap(True)
        intro.setObjectName("setupIntro")
        root.addWidget(title)
        root.addWidget(intro)

        form = QFormLayout()
        form.setVerticalSpacing(4)
        form.setHorizontalSpacing(16)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.errors: dict[str, QLabel] = {}

        self.station_name = QLineEdit()
        self.station_name.setPlaceholderText("e.g. line-3-final")
        self._row(form, "Station name", self.station_name, "station_name")

        self.source_kind = QComboBox()
        for kind, label in SOURCE_KINDS.items():
            self.source_kind.addItem(label, kind)
        self.source_kind.currentIndexChanged.connect(self._on_source_kind_current_index_changed)
        form.addRow("Source", self.source_kind)
        self.source_target = QLineEdit()
        self._source_browse = QPushButton("Browse…")
        self._source_browse.clicked.connect(self._on_source_browse_clicked)
        self._row(form, "", self._with_button(self.source_target, self._source_browse), "source")

        self.model = QLineEdit()
        self.model.setPlaceholderText("the bundle folder (model.safetensors + card, or an ONNX export)")
        model_browse = QPushButton("Browse…")
        model_browse.clicked.connect(self._on_model_browse_clicked)
        self._row(form, "Model bundle", self._with_button(self.model, model_browse), "model")

        self.database = QLineEdit()
        self.database.setPlaceholderText("a SQLite file, or postgresql+psycopg://user:pw@host/db")
        db_browse = QPushButton("Browse…")
        db_browse.clicked.connect(self._on_database_browse_clicked)
        self._row(form, "Visual log", self._with_button(self.database, db_browse), "database")

        self.expected_interval = QDoubleSpinBox()
        self.expected_interval.setRange(0, 86_400)
        self.expected_interval.setDecimals(1)
        self.expected_interval.setSuffix(" s")
        self.expected_interval.setToolTip("An alarm says 'no parts' after this long without one (0: never).")
        self._row(form, "Expected part interval", self.expected_interval, "expected_interval")
        root.addLayout(form)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: the checks do not know how long they take
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.status = QLabel("")
        self.status.setObjectName("setupStatus")
        self.status.setWordWrap(True)
        root.addWidget(self.progress)
        root.addWidget(self.status)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        self.save_button = QPushButton("Check and start")
        self.save_button.setObjectName("primary")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self._on_save_button_clicked)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)
        root.addLayout(buttons)
        self.setMinimumWidth(780)

    def _row(self, form: QFormLayout, label: str, widget: QWidget, key: str) -> None:
        error = QLabel("")
        error.setObjectName("fieldError")
        error.setWordWrap(True)
        error.hide()
        self.errors[key] = error
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 6)
        column.setSpacing(2)
        column.addWidget(widget)
        column.addWidget(error)
        form.addRow(label, box)

    @staticmethod
    def _with_button(edit: QLineEdit, button: QPushButton) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        row.addWidget(button)
        return box

    def _fill(self, config: StationConfig | None) -> None:
        if config is None:
            self.station_name.setText("station-1")
            self.database.setText(str(default_db_path()))
            self.expected_interval.setValue(DEFAULT_EXPECTED_INTERVAL_S)
            self._on_source_kind_current_index_changed(0)
            return
        kind, _, target = config.source.partition(":")
        index = self.source_kind.findData(kind)
        self.source_kind.setCurrentIndex(max(index, 0))
        self._on_source_kind_current_index_changed(self.source_kind.currentIndex())
        self.source_target.setText(target)
        self.station_name.setText(config.station_name)
        self.model.setText(str(config.model))
        self.database.setText(config.db_url or str(default_db_path()))
        self.expected_interval.setValue(config.expected_part_interval_s)

    # -- values -----------------------------------------------------------------------------------
    def values(self) -> SetupValues:
        return SetupValues(
            station_name=self.station_name.text().strip(),
            source_kind=str(self.source_kind.currentData()),
            source_target=self.source_target.text().strip(),
            model=self.model.text().strip(),
            database=self.database.text().strip(),
            expected_interval_s=float(self.expected_interval.value()),
        )

    def station_config(self, values: SetupValues) -> StationConfig:
        """The set-up as a ``StationConfig``: the entered fields over the initial set-up's others."""
        base: dict[str, Any] = {}
        if self.initial is not None:
            base = self.initial.model_dump(mode="json", exclude_defaults=True)
            if self.initial.source_kind != values.source_kind:
                base.pop("source_options", None)  # options of another kind of source
        base.update(
            source=values.source_spec,
            model=str(Path(values.model).expanduser().absolute()),
            db_url=values.db_url,
            station_name=values.station_name,
            expected_part_interval_s=values.expected_interval_s,
        )
        return StationConfig.model_validate(base)

    # -- checking ---------------------------------------------------------------------------------
    @property
    def checking(self) -> bool:
        return self._checking

    def check(self) -> None:
        """Check what was entered on the checking thread; ``checked`` follows."""
        if self._checking:
            return
        self._checking = True
        for label in self.errors.values():
            label.hide()
        self.save_button.setEnabled(False)
        self.progress.show()
        self.status.setText("Checking: loading the model, opening the source and the visual log…")
        self._thread.start()
        self._check_requested.emit(self.values())

    @Slot(object, object)
    def _on_checker_finished(self, values: SetupValues, result: SetupCheck) -> None:
        self._checking = False
        self._thread.quit()
        self._thread.wait()  # run() has returned: at once
        if self._closed:  # cancelled while checking: nothing is saved
            return
        self.progress.hide()
        self.save_button.setEnabled(True)
        self.last_check = result
        config: StationConfig | None = None
        if result.ok:
            try:
                config = self.station_config(values)
            except ValueError as exc:  # pydantic: a value the station's schema refuses
                result = SetupCheck(problems={"source": f"The set-up is refused: {exc}"})
        for key, message in result.problems.items():
            self.errors[key].setText("✗ " + message)
            self.errors[key].show()
        self.adjustSize()  # room for the messages (wrapped labels ask for height after the fact)
        if config is None or not result.ok:
            self.status.setText(f"Not started: {len(result.problems)} problem(s) above.")
            self.checked.emit(result)
            return
        try:
            save_station_config(config, self.config_file)
        except OSError as exc:
            self.status.setText(f"The set-up cannot be saved to {self.config_file}: {exc.strerror or exc}")
            self.checked.emit(result)
            return
        self.config = config
        self.status.setText(f"Saved to {self.config_file}.")
        self.checked.emit(result)
        self.accept()

    # -- slots ------------------------------------------------------------------------------------
    @Slot()
    def _on_save_button_clicked(self) -> None:
        self.check()

    @Slot(int)
    def _on_source_kind_current_index_changed(self, _index: int) -> None:
        kind = self.source_kind.currentData()
        self.source_target.setPlaceholderText(
            {
                "hotfolder": "the folder the camera writes to, e.g. /srv/line-3/inbox",
                "camera": "0 for the first camera, or rtsp://… / http://…",
                "video": "a video file, or its URL",
            }[kind]
        )
        self._source_browse.setEnabled(kind != "camera")

    @Slot()
    def _on_source_browse_clicked(self) -> None:
        if self.source_kind.currentData() == "hotfolder":
            chosen = QFileDialog.getExistingDirectory(self, "The hot folder", self.source_target.text())
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "A video", self.source_target.text())
        if chosen:
            self.source_target.setText(chosen)

    @Slot()
    def _on_model_browse_clicked(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "The model bundle folder", self.model.text())
        if chosen:
            self.model.setText(chosen)

    @Slot()
    def _on_database_browse_clicked(self) -> None:
        chosen, _ = QFileDialog.getSaveFileName(
            self,
            "The visual log (SQLite file)",
            self.database.text(),
            "SQLite (*.sqlite *.db);;All files (*)",
        )
        if chosen:
            self.database.setText(chosen)

    # -- ending -----------------------------------------------------------------------------------
    def done(self, result: int) -> None:
        # A check in flight is waited for (a model load cannot be interrupted); its result is
        # then dropped, since the dialog is closed.
        self._closed = True
        self._thread.quit()
        self._thread.wait()
        super().done(result)


_DIALOG_STYLE = f"""
QLabel#setupTitle {{ font-size: 26px; font-weight: 700; }}
QLabel#setupIntro, QLabel#setupStatus {{ color: {theme.TEXT_MUTED}; font-size: 16px; }}
QLabel#fieldError {{ color: #ffb3a1; font-size: 15px; font-weight: 600; }}
QLineEdit, QComboBox, QDoubleSpinBox {{
    background: {theme.PANEL_RAISED}; border: 1px solid {theme.BORDER}; border-radius: 4px;
    padding: 6px 8px; font-size: 16px; min-height: 24px;
}}
QLineEdit:focus, QComboBox:focus, QDoubleSpinBox:focus {{ border: 2px solid {theme.ACCENT}; }}
QPushButton {{
    background: {theme.PANEL_RAISED}; border: 1px solid {theme.BORDER}; border-radius: 4px;
    padding: 8px 16px; font-size: 16px;
}}
QPushButton:focus {{ border: 2px solid {theme.ACCENT}; }}
QPushButton#primary {{ background: #0072B2; border-color: #0072B2; font-weight: 700; }}
QPushButton:disabled {{ color: {theme.TEXT_DIM}; }}
QFormLayout QLabel, QLabel {{ font-size: 16px; }}
"""
