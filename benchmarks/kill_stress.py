"""SIGKILL stress test of the headless station: every file that arrives gets exactly one row.

A real station (``python -m core.cli run --headless --source hotfolder:INBOX``, its own
``INSPECTOR_HOME``, one OpenMP thread) is killed with SIGKILL at random moments and started again,
``--kills`` times, while

- a feeder drops parts into the inbox at ``--rate`` parts/s, each written under a hidden temporary
  name and renamed into place (as ``core.synth.feeder.feed_hot_folder`` does), and
- ``--slow-writers`` threads write PNG, JPEG and TIFF files directly under their final names, in
  3-6 chunks with 0.3-2 s pauses between them, which the station must wait for (truncation grace).

Every image is a different seeded part (``core.synth.parts.part_image``), so no file is a
legitimate duplicate of another. Each kill comes 0.5-4 s after the station started taking parts
(its row count grew). After the last kill a last station drains the inbox (no files left, the
row count unchanged for a while), is stopped with SIGTERM (it must exit 0), and the log is
checked against what was written:

- rows per written file, matched by content hash (the full file) and by name (a file rejected as
  truncated has a row with the hash of the bytes seen then): lost (no row), doubled (more than one
  row of its full bytes), re-inspected after growth (a "truncated" row, then a verdict: two rows
  by design), truncated only (rejected, never came back), rows that match no written file;
- not-inspected rows by reason; where the files ended up (processed/, rejected/, still in the inbox);
- orphan media files (under the media root, named by no row; ``*.part`` are unfinished atomic
  writes), media files named by a row that are missing;
- ``inspector verify-log --media`` and ``PRAGMA integrity_check``.

Usage::

    python benchmarks/kill_stress.py [--kills 50] [--rate 5] [--slow-writers 2] [--max-pause 2]
        [--seed 0] [--size 256] [--model BUNDLE] [--keep DIR]

Without ``--model`` a tiny model is generated and trained into the work folder (a few seconds).
Without ``--keep`` the work folder is a temporary one, removed at the end unless something was
wrong (then it is kept and named). Exit status 0 when nothing was lost, doubled or broken.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from core.synth.dataset import encode_png  # noqa: E402
from core.synth.parts import part_image  # noqa: E402

SLOW_FORMATS = (".png", ".jpg", ".tif")
_TAG = re.compile(r"\.regrown-[0-9A-Za-z]+(?=\.[^.]+$)")  # RegrowWatch's tag when the name was taken
_TRUNCATED_WORDS = ("truncat", "empty", "cut short")


@dataclass
class Written:
    """What the test wrote: file name -> (sha256 of the whole file, who wrote it)."""

    files: dict[str, tuple[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)
    writing: set[str] = field(default_factory=set)  # slow writers' files not finished yet

    def add(self, name: str, data: bytes, kind: str) -> None:
        with self.lock:
            self.files[name] = (hashlib.sha256(data).hexdigest(), kind)


# ---------------------------------------------------------------------------------------- writers


def feeder(
    inbox: Path, written: Written, *, rate_hz: float, seed: int, size: int, stop: threading.Event
) -> None:
    """Parts at a steady rate, each under a hidden temporary name renamed into place."""
    rng = random.Random(seed)
    interval = 1.0 / rate_hz
    start = time.monotonic()
    index = 0
    try:
        while not stop.is_set():
            if index and stop.wait(max(0.0, start + index * interval - time.monotonic())):
                break
            defective = rng.random() < 0.2
            image, _spec = part_image(seed, index, defective=defective, size=size)
            data = encode_png(image)
            name = f"part_{index:06d}_{'bad' if defective else 'good'}.png"
            tmp = inbox / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, inbox / name)
            written.add(name, data, "feeder")
            index += 1
    except Exception as exc:  # noqa: BLE001 - reported in the summary
        written.errors.append(f"feeder: {exc!r}")


def slow_writer(
    inbox: Path,
    written: Written,
    *,
    worker: int,
    seed: int,
    size: int,
    max_pause_s: float,
    stop: threading.Event,
) -> None:
    """Files written under their final names in chunks with pauses, as a slow camera PC would."""
    rng = random.Random(seed * 1000 + worker)
    index = 0
    try:
        while not stop.is_set():
            suffix = SLOW_FORMATS[index % len(SLOW_FORMATS)]
            defective = rng.random() < 0.2
            # Seeds far from the feeder's: every image is a different part.
            image, _spec = part_image(seed + 10_000 + worker, index, defective=defective, size=size)
            ok, buffer = cv2.imencode(suffix, np.ascontiguousarray(image))
            if not ok:
                raise RuntimeError(f"cv2.imencode({suffix}) failed")
            data = bytes(buffer.tobytes())
            name = f"slow{worker}_{index:05d}_{'bad' if defective else 'good'}{suffix}"
            chunks = rng.randint(3, 6)
            cuts = sorted(rng.sample(range(1, len(data)), chunks - 1))
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
            with written.lock:
                written.writing.add(name)
            fd = os.open(inbox / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                for i, piece in enumerate(pieces):
                    if i:
                        time.sleep(rng.uniform(0.3, max_pause_s))  # never interrupted: files end complete
                    os.write(fd, piece)
            finally:
                os.close(fd)
                with written.lock:
                    written.writing.discard(name)
            written.add(name, data, f"slow{suffix}")
            index += 1
            stop.wait(rng.uniform(0.2, 1.0))
    except Exception as exc:  # noqa: BLE001 - reported in the summary
        written.errors.append(f"slow writer {worker}: {exc!r}")


# ---------------------------------------------------------------------------------------- station


def env_for(home: Path) -> dict[str, str]:
    return dict(os.environ, INSPECTOR_HOME=str(home), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def row_count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM decisions").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def inbox_files(inbox: Path) -> list[str]:
    return sorted(p.name for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))


def start_station(
    model: Path, inbox: Path, db: Path, home: Path, logs: Path, n: int
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "core.cli", "run", "--headless",
        "--source", f"hotfolder:{inbox}", "--model", str(model),
        "--db", f"sqlite:///{db}", "--station", "stress", "--summary-s", "0",
    ]  # fmt: skip
    with (
        (logs / f"station_{n:03d}.jsonl").open("wb") as out,
        (logs / f"station_{n:03d}.err").open("wb") as err,
    ):
        return subprocess.Popen(
            cmd, env=env_for(home), stdout=out, stderr=err, cwd=Path(__file__).resolve().parent.parent
        )


def wait_for(condition, limit_s: float, proc: subprocess.Popen[bytes]) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def make_model(work: Path, seed: int) -> Path:
    data, bundle = work / "train_data", work / "model"
    env = env_for(work / "train_home")
    for cmd in (
        ["generate", str(data), "--good", "60", "--bad", "60", "--size", "256", "--seed", str(seed)],
        ["train", str(data), "--out", str(bundle), "--arch", "tiny_cnn", "--input-size", "64",
         "--epochs", "2", "--seed", str(seed), "--device", "cpu"],
    ):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "core.cli", *cmd], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"inspector {cmd[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return bundle


# ---------------------------------------------------------------------------------------- checks


def untagged(name: str) -> str:
    return _TAG.sub("", name)


def is_truncated_reason(reason: str | None) -> bool:
    return reason is not None and any(w in reason.lower() for w in _TRUNCATED_WORDS)


def analyse(written: Written, db: Path, inbox: Path, home: Path) -> tuple[list[str], bool]:
    """The summary lines about the log and the files, and whether anything was wrong."""
    lines: list[str] = []
    bad = False
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT part_id, source_ref, content_hash, verdict, reason, image_path, heatmap_path FROM decisions"
        ).fetchall()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    by_hash: dict[str, list[tuple]] = {}
    by_name: dict[str, list[tuple]] = {}
    for row in rows:
        if row[2]:
            by_hash.setdefault(row[2], []).append(row)
        by_name.setdefault(untagged(Path(row[1]).name), []).append(row)

    outcome: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    matched: set[str] = set()
    problems: list[str] = []
    for name, (digest, kind) in sorted(written.files.items()):
        kinds[kind] += 1
        full = by_hash.get(digest, [])
        partial = [r for r in by_name.get(name, []) if r[2] != digest]
        matched.update(r[0] for r in full + partial)
        partial_truncated = [r for r in partial if r[3] == "not_inspected" and is_truncated_reason(r[4])]
        other_partial = [r for r in partial if r not in partial_truncated]
        if not full and not partial:
            outcome["lost"] += 1
            problems.append(f"LOST {name} ({kind}): no row")
        elif len(full) > 1:
            outcome["doubled"] += 1
            problems.append(
                f"DOUBLED {name} ({kind}): {len(full)} rows of its bytes: "
                + "; ".join(f"{r[0]} {r[3]} {r[4] or ''} [{Path(r[1]).name}]" for r in full)
            )
        elif other_partial:
            outcome["odd"] += 1
            problems.append(
                f"ODD {name} ({kind}): rows of other bytes under its name: "
                + "; ".join(f"{r[0]} {r[3]} {r[4] or ''}" for r in other_partial)
            )
        elif not full:
            outcome["truncated only (never re-inspected)"] += 1
            problems.append(
                f"TRUNCATED ONLY {name} ({kind}): " + "; ".join(f"{r[0]} {r[4]}" for r in partial_truncated)
            )
        elif partial_truncated:
            outcome["re-inspected after growth"] += 1
            lines.append(
                f"  re-inspected after growth: {name} ({kind}): "
                + "; ".join(f"{r[0]} {r[4]}" for r in partial_truncated)
                + f" -> {full[0][0]} {full[0][3]}"
            )
        elif full[0][3] == "not_inspected":
            outcome["exactly one row, not inspected"] += 1
            problems.append(f"NOT INSPECTED {name} ({kind}): {full[0][0]} {full[0][4]}")
        else:
            outcome["exactly one row"] += 1
    stray = [r for r in rows if r[0] not in matched]

    reasons = Counter((r[4] or "?") for r in rows if r[3] == "not_inspected")
    verdicts = Counter(r[3] for r in rows)
    processed = (
        sorted(p.name for p in (inbox / "processed").glob("*")) if (inbox / "processed").is_dir() else []
    )
    rejected = sorted(p.name for p in (inbox / "rejected").glob("*")) if (inbox / "rejected").is_dir() else []
    left = inbox_files(inbox)

    media = home / "media"
    referenced = {p for r in rows for p in (r[5], r[6]) if p}
    on_disk = (
        {p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()}
        if media.is_dir()
        else set()
    )
    orphans = sorted(on_disk - referenced)
    missing = sorted(referenced - on_disk)
    orphan_parts = [o for o in orphans if o.endswith(".part")]

    lines.insert(
        0,
        f"files written:            {len(written.files)} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})",
    )
    lines.insert(
        1,
        f"rows:                     {len(rows)} ({', '.join(f'{k} {v}' for k, v in sorted(verdicts.items()))})",
    )
    lines.insert(2, "rows per written file:    " + ", ".join(f"{k} {v}" for k, v in sorted(outcome.items())))
    lines.insert(3, f"lost / doubled:           {outcome['lost']} / {outcome['doubled']}")
    lines.insert(4, f"rows matching no file:    {len(stray)}")
    lines.insert(
        5,
        "not inspected by reason:  " + ("; ".join(f"{n} x {r}" for r, n in reasons.most_common()) or "none"),
    )
    lines.insert(
        6,
        f"files now:                processed/ {len(processed)}, rejected/ {len(rejected)}, left in the inbox {len(left)}",
    )
    lines.insert(
        7,
        f"orphan media files:       {len(orphans)} ({len(orphan_parts)} unfinished *.part); "
        f"media named by rows but missing: {len(missing)}",
    )
    lines.insert(8, f"PRAGMA integrity_check:   {integrity}")
    for r in stray:
        problems.append(f"STRAY ROW {r[0]} {r[3]} {r[4] or ''} source {r[1]} hash {r[2]}")
    for name in left:
        problems.append(f"LEFT IN INBOX {name}")
    for name in rejected:
        problems.append(f"IN rejected/ {name}")
    for o in orphans:
        problems.append(f"ORPHAN media/{o}")
    for m in missing:
        problems.append(f"MISSING media/{m}")
    for err in written.errors:
        problems.append(f"WRITER ERROR {err}")
    bad = bool(
        outcome["lost"] or outcome["doubled"] or outcome["odd"] or outcome["truncated only (never re-inspected)"]
        or stray or left or missing or integrity != "ok" or written.errors
    )  # fmt: skip
    return lines + [f"  {p}" for p in problems[:200]] + (
        [f"  ... and {len(problems) - 200} more"] if len(problems) > 200 else []
    ), bad


# ---------------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--rate", type=float, default=5.0, help="feeder parts/s (default 5)")
    ap.add_argument("--slow-writers", type=int, default=2, help="threads writing files in chunks (default 2)")
    ap.add_argument(
        "--max-pause",
        type=float,
        default=2.0,
        help="slow writers pause 0.3..S s between chunks (default 2; above the 5 s truncation grace "
        "some files are rejected as truncated and must come back when they grow)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    ap.add_argument("--model", type=Path, help="model bundle (default: a tiny one trained here)")
    ap.add_argument("--keep", type=Path, help="work folder to use and keep (default: a temporary one)")
    ap.add_argument(
        "--start-timeout", type=float, default=120.0, help="s for a station to take its first part"
    )
    args = ap.parse_args()

    t0 = time.monotonic()
    if args.keep:
        work = args.keep.resolve()
        work.mkdir(parents=True, exist_ok=True)
        if any(work.iterdir()):
            raise SystemExit(f"--keep {work}: not empty")
    else:
        work = Path(tempfile.mkdtemp(prefix="kill_stress_"))
    inbox, home, db, logs = work / "inbox", work / "home", work / "log.sqlite", work / "logs"
    for d in (inbox, home, logs):
        d.mkdir(parents=True)
    rng = random.Random(args.seed)
    model = args.model.resolve() if args.model else make_model(work, args.seed)
    print(f"work folder {work}; model {model} ({time.monotonic() - t0:.1f} s)", flush=True)

    written = Written()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=feeder, args=(inbox, written),
            kwargs={"rate_hz": args.rate, "seed": args.seed, "size": args.size, "stop": stop}, daemon=True,
        )
    ] + [
        threading.Thread(
            target=slow_writer, args=(inbox, written),
            kwargs={
                "worker": w, "seed": args.seed, "size": args.size, "max_pause_s": args.max_pause, "stop": stop,
            },
            daemon=True,
        )
        for w in range(args.slow_writers)
    ]  # fmt: skip

    kills: list[tuple[float, int, int]] = []  # (delay s, rows before start, rows at kill)
    half_written = 0  # kills that came while a slow writer's file was half written
    start_times: list[float] = []
    problems: list[str] = []
    n = 0
    try:
        for t in threads:
            t.start()
        while len(kills) < args.kills:
            before = row_count(db)
            began = time.monotonic()
            proc = start_station(model, inbox, db, home, logs, n)
            n += 1
            if not wait_for(lambda b=before: row_count(db) > b, args.start_timeout, proc):
                code = proc.poll()
                problems.append(
                    f"station {n - 1} took no part within {args.start_timeout:.0f} s (exit {code})"
                )
                if code is None:
                    proc.kill()
                proc.wait()
                if len(problems) > 3:
                    break
                continue
            start_times.append(time.monotonic() - began)
            delay = rng.uniform(0.5, 4.0)
            time.sleep(delay)
            if proc.poll() is not None:
                problems.append(f"station {n - 1} exited by itself ({proc.returncode}) before its kill")
                continue
            with written.lock:
                half_written += bool(written.writing)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills.append((delay, before, row_count(db)))
            print(
                f"kill {len(kills):3d}: {delay:.2f} s after its first part (start {start_times[-1]:.1f} s), "
                f"rows {before} -> {kills[-1][2]}, inbox {len(inbox_files(inbox))}",
                flush=True,
            )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)

    # The last station drains the inbox; rejected files that grow again come back meanwhile.
    proc = start_station(model, inbox, db, home, logs, n)
    drained = False
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        count = row_count(db)
        if count != last:
            last, stable_since = count, time.monotonic()
        if not inbox_files(inbox) and time.monotonic() - stable_since >= 8.0:  # > settle + grace
            drained = True
            break
        time.sleep(0.2)
    if not drained:
        problems.append(f"the last station did not drain the inbox within 300 s (exit {proc.poll()})")
    term_code: int | None = None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            term_code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            term_code = proc.wait()
            problems.append("the last station did not stop within 60 s of SIGTERM (killed)")
    else:
        term_code = proc.returncode
    if term_code != 0:
        problems.append(f"the last station exited {term_code} after SIGTERM, not 0")

    verify = subprocess.run(
        [sys.executable, "-m", "core.cli", "verify-log", "--db", f"sqlite:///{db}", "--media"],
        env=env_for(home), capture_output=True, text=True,
    )  # fmt: skip
    lines, wrong = analyse(written, db, inbox, home)
    wrong = wrong or bool(problems) or verify.returncode != 0
    wall = time.monotonic() - t0

    delays = [k[0] for k in kills]
    print("\n==== kill stress summary ====")
    print(
        f"kills done:               {len(kills)} (stations started {n + 1}; "
        f"{half_written} while a slow writer's file was half written)"
    )
    if kills:
        print(
            f"kill moments:             {min(delays):.2f}-{max(delays):.2f} s after the first part; "
            f"station start to first part median {sorted(start_times)[len(start_times) // 2]:.1f} s, "
            f"max {max(start_times):.1f} s"
        )
    print(
        f"feeder rate:              {args.rate} parts/s, slow writers {args.slow_writers} (pauses 0.3-{args.max_pause} s), size {args.size} px"
    )
    for line in lines:
        print(line)
    verify_out = (verify.stdout + verify.stderr).strip().splitlines()
    print(f"verify-log --media:       exit {verify.returncode}: " + " | ".join(verify_out[-4:]))
    print(f"last station, SIGTERM:    exit {term_code}")
    for p in problems:
        print(f"  PROBLEM {p}")
    print(f"wall time:                {wall:.0f} s")
    print(f"result:                   {'PROBLEMS (see above)' if wrong else 'ok'}")
    if wrong or args.keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
