"""Writing the station's rows: on the station's thread (``InlineWriter``) or on a writer thread
with its own ``VisualLog`` (``ThreadWriter``), several parts per transaction (group commit).

The writer thread lets the disk and database waits of one part overlap with the inspection of the
next, and commits the rows of every part waiting for it in one transaction: one database sync
and one directory sync for a burst, not one per part. Either writer hands back ``Done`` records
in submission order; the station's thread acknowledges and notifies from those.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from core.common.types import Decision, Inspection, Part

if TYPE_CHECKING:
    from core.storage import VisualLog

log = logging.getLogger(__name__)

GROUP_COMMIT = 32  # most parts the writer commits in one transaction


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One part to record: its inspection, or the reason it was not inspected."""

    part: Part
    inspection: Inspection | None
    reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Done:
    """A recorded job (``decision``), or one whose row could not be stored (``error``)."""

    job: Job
    decision: Decision | None
    error: BaseException | None


class Writer(Protocol):
    """What the runtime needs from a writer."""

    pending: int

    def submit(self, job: Job) -> None: ...
    def take_done(self) -> list[Done]: ...
    def wait(self, timeout_s: float) -> None: ...
    def close(self) -> None: ...


def record_one(visual_log: VisualLog, job: Job, model_hash: str | None, model_name: str | None) -> Decision:
    """Record one job; a part whose row cannot be written with its media gets a bare error row.

    Raises:
        StorageError: The storage refused the row (disk full, database locked).
    """
    from core.storage import StorageError

    try:
        return visual_log.record(
            job.part, job.inspection, model_hash=model_hash, model_name=model_name, reason=job.reason
        )
    except StorageError:
        raise
    except Exception as exc:  # a bug or an odd input: the part still gets its row
        log.exception("recording %s failed; recording it as not inspected", job.part.source_ref)
        bare = dataclasses.replace(
            job.part,
            image=None,
            encoded=None,
            error=f"not inspected: recording the decision failed ({type(exc).__name__}: {exc})",
        )
        return visual_log.record(bare, None, model_hash=model_hash, model_name=model_name)


def record_group(
    visual_log: VisualLog, jobs: list[Job], model_hash: str | None, model_name: str | None
) -> list[Done]:
    """Record ``jobs`` in one transaction; when that fails for a reason other than the storage,
    record them one by one, so one odd part does not cost the others their rows.

    Raises:
        StorageError: The storage refused the group.
    """
    from core.storage import Entry, StorageError

    if len(jobs) > 1:
        try:
            entries = [Entry(part=j.part, inspection=j.inspection, reason=j.reason) for j in jobs]
            decisions = visual_log.record_many(entries, model_hash=model_hash, model_name=model_name)
            return [Done(job, decision, None) for job, decision in zip(jobs, decisions, strict=True)]
        except StorageError:
            raise
        except Exception:
            log.debug("group commit of %d parts failed; recording them one by one", len(jobs), exc_info=True)
    done = []
    for job in jobs:
        try:
            done.append(Done(job, record_one(visual_log, job, model_hash, model_name), None))
        except Exception as exc:
            done.append(Done(job, None, exc))
    return done


class InlineWriter:
    """Records on the caller's thread, at once."""

    def __init__(self, visual_log: VisualLog, model_hash: str | None, model_name: str | None) -> None:
        self._log, self._hash, self._name = visual_log, model_hash, model_name
        self._done: list[Done] = []
        self.pending = 0

    def submit(self, job: Job) -> None:
        try:
            self._done.append(Done(job, record_one(self._log, job, self._hash, self._name), None))
        except Exception as exc:
            self._done.append(Done(job, None, exc))

    def take_done(self) -> list[Done]:
        done, self._done = self._done, []
        return done

    def wait(self, timeout_s: float) -> None:
        pass

    def close(self) -> None:
        pass


class ThreadWriter:
    """Records on its own thread with its own ``VisualLog`` (made there), in submission order."""

    def __init__(
        self, open_log: Callable[[], VisualLog], model_hash: str | None, model_name: str | None
    ) -> None:
        self._open_log, self._hash, self._name = open_log, model_hash, model_name
        self._cond = threading.Condition()
        self._jobs: deque[Job | None] = deque()
        self._done: deque[Done] = deque()
        self.pending = 0  # submitted and not yet taken back
        self._thread = threading.Thread(target=self._run, name="station-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cond:
            self.pending += 1
            self._jobs.append(job)
            self._cond.notify_all()

    def take_done(self) -> list[Done]:
        with self._cond:
            done = list(self._done)
            self._done.clear()
            self.pending -= len(done)
            return done

    def wait(self, timeout_s: float) -> None:
        with self._cond:
            if not self._done and timeout_s > 0:
                self._cond.wait(timeout_s)

    def close(self) -> None:
        with self._cond:
            self._jobs.append(None)
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        visual_log: VisualLog | None = None
        try:
            while True:
                with self._cond:
                    while not self._jobs:
                        self._cond.wait()
                    # Everything waiting goes in one transaction (group commit).
                    jobs: list[Job] = []
                    while self._jobs and len(jobs) < GROUP_COMMIT:
                        head = self._jobs[0]
                        if head is None:
                            break
                        jobs.append(head)
                        self._jobs.popleft()
                    stop = not jobs
                if stop:
                    return
                try:
                    if visual_log is None:  # (again) after the storage was unavailable
                        visual_log = self._open_log()
                    results = record_group(visual_log, jobs, self._hash, self._name)
                except Exception as exc:
                    results = [Done(job, None, exc) for job in jobs]
                with self._cond:
                    self._done.extend(results)
                    self._cond.notify_all()
        finally:
            if visual_log is not None:
                visual_log.close()
