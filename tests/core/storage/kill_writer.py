"""Writer process for the SIGKILL test (run as a script, not collected by pytest).

Starting Python and importing NumPy, OpenCV and SQLAlchemy takes most of a second, too slow for
fifty kills. So this process imports once and then, for each ``GO`` line on stdin, forks a
writer child that opens the visual log (as a restarted station would), resumes after the last
part the log holds, and streams parts: each one is recorded, and only then acknowledged with an
``ACK <part id> <number>`` line on stdout, as a station shows a part only once it is logged.
The test kills the child with SIGKILL at a random moment; this process reports its end.

Protocol (one line each): stdout ``READY``; stdin ``GO <seed>`` -> stdout ``PID <pid>``, then
the child's ``OPEN`` and ``ACK`` lines, then ``EXIT <pid> <status>``; stdin ``QUIT``.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import time
from pathlib import Path


def _write(line: str) -> None:
    os.write(1, (line + "\n").encode())  # unbuffered: a killed child loses no acknowledged line


def _child(url: str, media_root: Path, seed: int) -> None:
    import numpy as np

    from core.common.fileio import sha256_bytes
    from core.common.types import Inspection, Part
    from core.storage import VisualLog

    started = time.perf_counter()
    model_hash = sha256_bytes(b"kill test model")
    rng = np.random.default_rng(seed)
    log = VisualLog(url, media_root=media_root, station="kill-test")
    latest = log.latest(1)
    number = int(latest[0].source_ref.split("-")[1]) + 1 if latest else 0
    _write(f"OPEN {number} after {time.perf_counter() - started:.3f}s")
    threshold = 0.5
    while True:
        image = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
        part = Part(source_ref=f"part-{number}", arrived_at=log.now(), image=image, content_hash=None)
        if number % 11 == 5:
            decision = log.record(part, None, model_hash=None, reason="camera timeout")
        else:
            heatmap = rng.integers(0, 256, size=(16, 16), dtype=np.uint8)
            score = float(rng.random())
            inspection = Inspection(score=score, threshold=threshold, heatmap=heatmap, latency_ms=1.0)
            decision = log.record(part, inspection, model_hash=model_hash, model_name="kill")
        _write(f"ACK {decision.part_id} {number}")
        if number % 23 == 7:
            new = round(random.Random(number).uniform(0.3, 0.7), 3)
            log.record_threshold_change(
                threshold, new, actor=log.access.system_actor(), reason=f"after part {number}"
            )
            threshold = new
        number += 1


def _warm_up(url: str, scratch: Path) -> None:
    """Import and exercise everything once, on a database in memory, before any fork.

    What SQLAlchemy and the importers set up on first use (mappers, dialects, Alembic) is then
    inherited by each child, which starts like a warm station instead of a cold interpreter.
    """
    import numpy as np

    from core.common.types import Inspection, Part
    from core.storage import VisualLog

    with VisualLog("sqlite://", media_root=scratch, station="warm-up") as log:
        image = np.zeros((8, 8), dtype=np.uint8)
        part = Part(source_ref="part-0", arrived_at=log.now(), image=image)
        inspection = Inspection(score=0.1, threshold=0.5, heatmap=image, latency_ms=1.0)
        log.record(part, inspection, model_hash="0" * 64)
        log.latest(1)
    if not url.startswith("sqlite"):
        # A server database: its driver and dialect warm up on a real connection (which also
        # migrates it; SQLite files are left for the first child, so kills hit a migration too).
        # The engine is disposed before any fork: no child shares a socket.
        VisualLog(url, media_root=scratch, station="warm-up").close()


def main() -> None:
    url, media_root = sys.argv[1], Path(sys.argv[2])
    _warm_up(url, media_root.parent / "warm-up-media")
    # The children's garbage collector would otherwise walk (and so copy) every inherited page.
    gc.freeze()
    _write("READY")
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "QUIT":
            break
        seed = int(words[1])
        pid = os.fork()
        if pid == 0:  # the child: never returns into this loop
            status = 0
            try:
                _child(url, media_root, seed)
            except BaseException as exc:  # a real error (not the kill) fails the test
                _write(f"ERROR {type(exc).__name__}: {exc}")
                status = 1
            finally:
                os._exit(status)
        _write(f"PID {pid}")
        _, status = os.waitpid(pid, 0)
        _write(f"EXIT {pid} {status}")


if __name__ == "__main__":
    main()
