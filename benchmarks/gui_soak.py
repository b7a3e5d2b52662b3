"""Soak test of the operator's window: the real StationWindow on a real hot folder, at the
station's maximum rate, for ``--minutes`` (default 30).

A feeder process keeps ``--backlog`` files waiting in the inbox (each a different part: a seeded synthetic
part with a unique counter stamped into its pixels, so the station's duplicate check never
fires), so the station runs as fast as it can; ``--rate`` caps the parts per second instead. The
window runs on the platform Qt picks (``QT_QPA_PLATFORM=offscreen`` without a display), with its
worker thread, shift counters and repaint timer, as on a line.

Every ``--sample-s`` seconds (default 60) one line: minutes run, parts in the log, parts/s over
the interval, the process's resident memory (RSS, MB), its thread count, its open file
handles, and the GUI thread's longest stall in the interval (a 20 ms QTimer heartbeat: the
longest gap between two beats minus 20 ms) and the longest repaint of the window itself
(``render_now``: the GUI thread's own work, apart from waiting for a core). A summary follows: first / last / highest of each,
and the longest stall overall. Flat memory, threads and handles, and a stall under 100 ms are
the targets. On shared cores the stall is noisy: another process taking the core for 100 ms
shows as a stall here.

Usage::

    python benchmarks/gui_soak.py [--minutes 30] [--rate 0] [--backlog 40] [--sample-s 60]
        [--model BUNDLE] [--work DIR]

Without ``--model`` a tiny model is trained into the work folder (as ``kill_stress.py`` does);
without ``--work`` the work folder is temporary and removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Protocol

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

HEARTBEAT_MS = 20


class EventLike(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class CounterLike(Protocol):
    value: int


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def handles() -> int:
    return len(os.listdir("/proc/self/fd"))


def feeder(inbox: Path, stop: EventLike, rate: float, backlog: int, written: CounterLike) -> None:
    """Keep ``backlog`` parts waiting (or write ``rate`` parts/s), each one different.

    Runs in a process of its own, as a camera's software writing into the hot folder would: in
    the window's process it would compete with the GUI thread for the GIL, which no line does.
    """
    sys.path.insert(0, str(ROOT))
    from core.synth.parts import part_image

    pool = [part_image(77, i, defective=i % 3 == 0, size=128)[0] for i in range(64)]
    # Unique across runs too: a file of a name and content the log already has is taken for one
    # recorded before a crash (moved away, no second row), which is not what a soak should test.
    run = time.time_ns()
    count = 0
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            waiting = sum(1 for e in os.scandir(inbox) if e.name.endswith(".png"))
        except FileNotFoundError:
            stop.wait(0.5)
            continue
        if rate <= 0 and waiting >= backlog:
            stop.wait(0.02)
            continue
        if rate > 0:
            now = time.monotonic()
            if now < next_at:
                stop.wait(next_at - now)
                continue
            next_at = max(next_at + 1.0 / rate, now - 1.0)
        image = pool[count % len(pool)].copy()
        image[0, :16] = np.frombuffer(run.to_bytes(8, "little") + count.to_bytes(8, "little"), np.uint8)
        ok, data = cv2.imencode(".png", image)
        assert ok
        temporary = inbox / f".part_{run}_{count:08d}.png.tmp"
        temporary.write_bytes(data.tobytes())
        os.replace(temporary, inbox / f"part_{run}_{count:08d}.png")
        count += 1
        written.value = count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=0.0, help="parts/s; 0: as fast as the station goes")
    ap.add_argument("--backlog", type=int, default=40, help="files kept waiting when --rate is 0")
    ap.add_argument("--sample-s", type=float, default=60.0)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="gui-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if args.model is None:
        from kill_stress import make_model

        model = make_model(work, 0)
    else:
        model = args.model.resolve()
    print(f"work folder {work}; model {model} ({time.monotonic() - t0:.1f} s)", flush=True)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from core.station.config import SourceOptions, StationConfig
    from core.station.loop import LoopSettings
    from core.station.runtime import build_runtime
    from inspector_gui.app import ensure_qt_platform
    from inspector_gui.main_window import StationWindow
    from inspector_gui.worker import GUI_SETTINGS, WorkerController

    inbox = work / "inbox"
    inbox.mkdir(exist_ok=True)
    db = work / "log.sqlite"
    config = StationConfig(
        source=f"hotfolder:{inbox}",
        model=model,
        db_url=f"sqlite:///{db}",
        media_root=work / "media",
        station_name="soak",
        threads=1,
        source_options=SourceOptions(settle_s=0.05, scan_interval_s=0.05),
    )
    settings = LoopSettings(
        step_timeout_s=GUI_SETTINGS.step_timeout_s,
        backoff_first_s=GUI_SETTINGS.backoff_first_s,
        backoff_max_s=GUI_SETTINGS.backoff_max_s,
        expected_part_interval_s=10.0,
        disk_floor_mb=0,
    )

    ensure_qt_platform()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    controller = WorkerController(lambda: build_runtime(config), settings=settings)
    window = StationWindow(controller, title="inspector — soak")
    window.resize(1366, 768)
    window.show()
    controller.start()

    beats: list[float] = [time.monotonic()]
    stall = {"interval": 0.0, "overall": 0.0}
    gaps: list[float] = []
    renders = {"interval": 0.0, "overall": 0.0}
    render_now = window.render_now

    def timed_render_now() -> None:
        # The window's own work per repaint, apart from the scheduler's delays.
        t = time.perf_counter()
        render_now()
        ms = (time.perf_counter() - t) * 1000
        renders["interval"] = max(renders["interval"], ms)
        renders["overall"] = max(renders["overall"], ms)

    window.render_now = timed_render_now  # type: ignore[method-assign]

    # The cyclic garbage collector stops every thread while it runs: its longest pass per interval.
    collecting: dict[str, float] = {"since": 0.0, "interval": 0.0, "overall": 0.0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting["since"] = time.perf_counter()
        elif collecting["since"]:
            ms = (time.perf_counter() - collecting["since"]) * 1000
            collecting["interval"] = max(collecting["interval"], ms)
            collecting["overall"] = max(collecting["overall"], ms)

    gc.callbacks.append(on_gc)
    final = {"stall": float("nan"), "render": float("nan"), "p99": float("nan"), "gc": float("nan")}

    def on_beat() -> None:
        now = time.monotonic()
        gap_ms = (now - beats[0]) * 1000 - HEARTBEAT_MS
        beats[0] = now
        stall["interval"] = max(stall["interval"], gap_ms)
        stall["overall"] = max(stall["overall"], gap_ms)
        gaps.append(gap_ms)

    heartbeat = QTimer()
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(on_beat)
    heartbeat.start()

    processes = multiprocessing.get_context("spawn")  # not forked from a process running Qt
    stop = processes.Event()
    written = processes.Value("q", 0)
    feed = processes.Process(target=feeder, args=(inbox, stop, args.rate, args.backlog, written), daemon=True)
    samples: list[tuple[float, int, float, float, int, int, float, float, float]] = []
    started = time.monotonic()
    last = {"t": started, "parts": 0}
    print(
        f"{'min':>6} {'parts':>8} {'parts/s':>8} {'RSS MB':>8} {'threads':>8} {'handles':>8} {'stall ms':>9}"
        f" {'render ms':>10} {'gc ms':>7}",
        flush=True,
    )

    def sample() -> None:
        now = time.monotonic()
        parts = window.counters.total
        rate = (parts - last["parts"]) / max(now - last["t"], 1e-6)
        last.update(t=now, parts=parts)
        row = (
            (now - started) / 60, parts, rate, rss_mb(), threads(), handles(), stall["interval"], renders["interval"],
            collecting["interval"],
        )  # fmt: skip
        stall["interval"] = renders["interval"] = collecting["interval"] = 0.0
        samples.append(row)
        print(
            f"{row[0]:6.1f} {row[1]:8d} {row[2]:8.1f} {row[3]:8.1f} {row[4]:8d} {row[5]:8d} {row[6]:9.1f}"
            f" {row[7]:10.1f} {row[8]:7.1f}",
            flush=True,
        )

    sampler = QTimer()
    sampler.setInterval(round(args.sample_s * 1000))
    sampler.timeout.connect(sample)

    def begin() -> None:
        # Measure from the first part on (the model's loading is not the soak).
        if window.counters.total == 0:
            QTimer.singleShot(200, begin)
            return
        nonlocal started
        started = time.monotonic()
        last.update(t=started, parts=window.counters.total)
        stall["interval"] = stall["overall"] = renders["overall"] = collecting["overall"] = 0.0
        gaps.clear()
        sample()
        sampler.start()
        QTimer.singleShot(round(args.minutes * 60_000), finish)

    def finish() -> None:
        # The last sample, then close: joining the worker at close is not a stall of the line.
        sampler.stop()
        sample()
        final["stall"] = stall["overall"]
        final["render"] = renders["overall"]
        final["gc"] = collecting["overall"]
        final["p99"] = float(np.percentile(gaps, 99)) if gaps else float("nan")
        heartbeat.stop()
        window.close()

    feed.start()
    QTimer.singleShot(200, begin)
    window.closed.connect(app.quit)
    app.exec()
    stop.set()
    feed.join(5)
    if feed.is_alive():
        feed.terminate()

    rss = [s[3] for s in samples]
    thr = [s[4] for s in samples]
    fds = [s[5] for s in samples]
    total_min = samples[-1][0]
    parts = samples[-1][1] - samples[0][1]
    print(
        f"\nsummary: {total_min:.1f} min, {parts} parts ({parts / max(total_min * 60, 1e-6):.1f} parts/s), "
        f"{written.value} files written\n"
        f"  RSS MB   first {rss[0]:.1f}  last {rss[-1]:.1f}  max {max(rss):.1f}\n"
        f"  threads  first {thr[0]}  last {thr[-1]}  max {max(thr)}\n"
        f"  handles  first {fds[0]}  last {fds[-1]}  max {max(fds)}\n"
        f"  longest GUI-thread stall {final['stall']:.1f} ms, 99th percentile {final['p99']:.1f} ms"
        f" (heartbeat {HEARTBEAT_MS} ms); longest repaint {final['render']:.1f} ms; longest garbage collection {final['gc']:.1f} ms\n  "
        f"max RSS of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB",
        flush=True,
    )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
