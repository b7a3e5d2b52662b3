"""SIGKILL at random moments while a writer streams decisions: nothing acknowledged is ever lost.

After every kill the log is opened again (a restart) and checked: every acknowledged decision is
there exactly once, every row has its image and heatmap, the parts are numbered without a gap or
a repeat (the writer resumes after the last logged part), the hash chain verifies, and on SQLite
``PRAGMA integrity_check`` is ok.

``INSPECTOR_SIGKILL_ROUNDS`` sets the number of kills on SQLite (default and CI: 50), and
``INSPECTOR_SIGKILL_PG_ROUNDS`` on PostgreSQL (default 25: a server rolls back a dead client's
transaction by itself; the kills there check the chain and the files, at twice the cost a round).
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.common.types import Verdict
from core.storage import VisualLog

ROUNDS = int(os.environ.get("INSPECTOR_SIGKILL_ROUNDS", "50"))
PG_ROUNDS = int(os.environ.get("INSPECTOR_SIGKILL_PG_ROUNDS", "25"))
WRITER = Path(__file__).with_name("kill_writer.py")
OPENING_SHARE = 0.2  # kills at a random moment after the fork: while opening (or migrating)
MAX_DELAY_S = 0.1  # the others come this long at most after the log is open: inside or between records

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork() and SIGKILL")


class Writer:
    """The writer process and the lines it prints, read on a thread."""

    def __init__(self, url: str, media_root: Path, stderr: Path) -> None:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self._stderr = open(stderr, "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, str(WRITER), url, str(media_root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put("EOF")

    def expect(self, word: str, timeout_s: float = 60.0) -> tuple[str, list[str]]:
        """Wait for a line starting with ``word``; returns it and the lines before it."""
        before = []
        while True:
            line = self.lines.get(timeout=timeout_s)
            if line.startswith(word):
                return line, before
            if line.startswith(("ERROR", "EOF")):
                raise AssertionError(f"the writer failed: {line}")
            before.append(line)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()

    def close(self) -> None:
        try:
            self.send("QUIT")
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()


@pytest.fixture
def writer_for(tmp_path: Path) -> Iterator[type[Writer]]:
    writers: list[Writer] = []

    class Started(Writer):
        def __init__(self, url: str, media_root: Path) -> None:
            super().__init__(url, media_root, tmp_path / "writer.stderr")
            writers.append(self)

    yield Started
    for writer in writers:
        writer.close()


def _check(url: str, media_root: Path, acked: dict[str, int], checked: set[str]) -> int:
    """The log after a restart; returns how many decisions it holds."""
    with VisualLog(url, media_root=media_root, station="kill-test") as log:
        decisions = log.find(limit=None, newest_first=False)
        numbers = [int(d.source_ref.split("-")[1]) for d in decisions]
        assert sorted(numbers) == list(range(len(numbers))), "a part is missing or logged twice"
        by_id = {d.part_id: number for d, number in zip(decisions, numbers, strict=True)}
        lost = {part_id: n for part_id, n in acked.items() if by_id.get(part_id) != n}
        assert not lost, f"acknowledged decisions lost: {lost}"
        for decision in decisions:
            if decision.part_id in checked:
                continue
            assert decision.image_path is not None and log.media_path(decision.image_path).is_file()
            if decision.verdict is not Verdict.NOT_INSPECTED:
                assert log.load_heatmap(decision) is not None, f"no heatmap for {decision.part_id}"
            checked.add(decision.part_id)
        verified = log.verify()
        assert verified.ok, verified.problem
        if log.engine.dialect.name == "sqlite":
            with log.engine.connect() as connection:
                assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        return len(decisions)


def test_sigkill_at_random_moments_loses_no_acknowledged_decision(
    fresh_db_url: str, tmp_path: Path, writer_for: type[Writer]
) -> None:
    media_root = tmp_path / "media"
    rounds = ROUNDS if fresh_db_url.startswith("sqlite") else PG_ROUNDS
    writer = writer_for(fresh_db_url, media_root)
    writer.expect("READY")
    rng = random.Random(20250314)
    acked: dict[str, int] = {}
    checked: set[str] = set()
    rounds_with_acks = killed_while_opening = 0

    for round_number in range(rounds):
        writer.send(f"GO {round_number}")
        pid = int(writer.expect("PID")[0].split()[1])
        early: list[str] = []
        if rng.random() >= OPENING_SHARE:  # most kills land while parts stream, at a random moment
            open_line, early = writer.expect("OPEN")
            early.append(open_line)
        time.sleep(rng.uniform(0.0, MAX_DELAY_S))
        os.kill(pid, signal.SIGKILL)
        exit_line, lines = writer.expect(f"EXIT {pid}")
        lines = early + lines
        status = int(exit_line.split()[2])
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, exit_line
        acks = [line.split() for line in lines if line.startswith("ACK")]
        acked.update({part_id: int(number) for _, part_id, number in acks})
        rounds_with_acks += bool(acks)
        killed_while_opening += not any(line.startswith("OPEN") for line in lines)
        _check(fresh_db_url, media_root, acked, checked)

    total = _check(fresh_db_url, media_root, acked, checked)
    print(
        f"{rounds} kills: {len(acked)} acknowledged, {total} logged, "
        f"{killed_while_opening} kills while opening, {rounds_with_acks} rounds with acknowledged parts"
    )
    assert rounds_with_acks >= rounds // 2, "too few kills landed while parts were streaming"
    assert len(acked) <= total
