"""Labelled image folders: scanning, de-duplication and seeded stratified splits.

A data folder holds one sub-folder per class; a mapping says which folder names mean good and
which mean bad (the casting data uses ``ok_front`` / ``def_front``). Identical images (same
content hash) always land in the same split, so a duplicate can never leak from training into
validation or test.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.common.fileio import sha256_file, write_atomic
from core.imaging.decode import IMAGE_SUFFIXES

DEFAULT_CLASS_MAP: dict[str, str] = {
    "good": "good",
    "ok": "good",
    "ok_front": "good",
    "bad": "bad",
    "defective": "bad",
    "def_front": "bad",
}
LABELS = {"good": 0, "bad": 1}


@dataclass(frozen=True, slots=True)
class Sample:
    path: Path
    label: int  # 0 good, 1 bad
    content_hash: str


def scan_folder(
    root: Path, class_map: Mapping[str, str] | None = None, *, good_only: bool = False
) -> list[Sample]:
    """All images under the class folders of ``root``, sorted by path. Both classes must be
    there, or with ``good_only`` at least the good one (a run on good parts alone)."""
    class_map = dict(DEFAULT_CLASS_MAP if class_map is None else class_map)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    samples: list[Sample] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label_name = class_map.get(folder.name)
        if label_name is None:
            continue
        if label_name not in LABELS:
            raise ValueError(f"class map sends {folder.name!r} to {label_name!r}; use 'good' or 'bad'")
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                samples.append(Sample(path, LABELS[label_name], sha256_file(path)))
    counts = np.bincount([s.label for s in samples], minlength=2)
    if counts[0] == 0 or (counts[1] == 0 and not good_only):
        raise ValueError(
            f"{root}: need images of both classes, found {counts[0]} good and {counts[1]} bad "
            f"(class folders: {', '.join(sorted(class_map))})"
            + (
                "; with no bad part at all, train on good parts alone: --synthetic-spots 0.5"
                if counts[0]
                else ""
            )
        )
    return samples


def data_hash(samples: list[Sample]) -> str:
    """One hash for a training set: its sorted content hashes and labels."""
    digest = hashlib.sha256()
    for h, label in sorted((s.content_hash, s.label) for s in samples):
        digest.update(f"{h}:{label}\n".encode())
    return digest.hexdigest()


def stratified_split(
    samples: list[Sample],
    fractions: Mapping[str, float],
    *,
    seed: int,
    group_pattern: str | None = None,
) -> dict[str, list[Sample]]:
    """Split into named parts by fraction, stratified by class; groups stay together.

    A group is every sample with the same content hash (duplicates), or, with ``group_pattern``,
    the same first match of that regular expression in the file name (e.g. several photographs
    of one part, or a good/bad pair of one synthetic part). Groups are stratified by the classes
    they hold. The last named part takes the remainder; each part gets at least one group of a
    stratum when the stratum has enough groups.
    """
    rng = np.random.default_rng(seed)
    pattern = re.compile(group_pattern) if group_pattern else None
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        match = pattern.search(s.path.name) if pattern else None
        key = (
            f"name:{match.group(1) if match.groups() else match.group(0)}"
            if match
            else f"hash:{s.content_hash}"
        )
        groups.setdefault(key, []).append(s)
    strata: dict[tuple[int, ...], list[str]] = {}
    for key, members in groups.items():
        strata.setdefault(tuple(sorted({m.label for m in members})), []).append(key)
    names = list(fractions)
    out: dict[str, list[Sample]] = {name: [] for name in names}
    for stratum in sorted(strata):
        keys = sorted(strata[stratum])
        rng.shuffle(keys)
        n = len(keys)
        start = 0
        for i, name in enumerate(names):
            if i == len(names) - 1:
                stop = n
            else:
                stop = start + max(1 if n >= len(names) else 0, round(n * fractions[name]))
                stop = min(stop, n - (len(names) - 1 - i))
            for key in keys[start:stop]:
                out[name].extend(groups[key])
            start = stop
    return {name: sorted(part, key=lambda s: str(s.path)) for name, part in out.items()}


def write_manifest(path: Path, splits: Mapping[str, list[Sample]], root: Path) -> None:
    """Save a split so evaluation can reproduce it exactly."""
    doc = {
        name: [
            {"path": str(s.path.relative_to(root)), "label": s.label, "sha256": s.content_hash} for s in part
        ]
        for name, part in splits.items()
    }
    write_atomic(path, (json.dumps({"root": str(root), "splits": doc}, indent=1) + "\n").encode())


def check_manifest_images(
    splits: Mapping[str, list[Sample]], parts: tuple[str, ...], path: Path, root: Path
) -> None:
    """Every image of the named parts of a split read from ``path`` is there, unchanged.

    Used to train again on an earlier run's split (``train``, ``val``) and to evaluate on the
    split a bundle was made with (``test``): an image missing or changed since the manifest was
    written (another content hash) would make the figures those of other parts.

    Raises:
        ValueError: a named part is missing from the manifest or empty, or its images are missing
            or changed (how many, and the first three).
    """
    problems: list[str] = []
    for name in parts:
        if not splits.get(name):
            raise ValueError(f"{path}: the manifest has no {name!r} part")
        for s in splits[name]:
            if not s.path.is_file():
                problems.append(f"{s.path} ({name}): missing")
            elif sha256_file(s.path) != s.content_hash:
                problems.append(f"{s.path} ({name}): changed since the manifest was written")
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ValueError(
            f"the {'/'.join(parts)} split of {path} does not match the images under {root}: "
            f"{len(problems)} image(s): {shown}"
        )


def read_manifest(path: Path, root: Path | None = None) -> dict[str, list[Sample]]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    base = Path(root) if root is not None else Path(doc["root"])
    return {
        name: [Sample(base / item["path"], int(item["label"]), item["sha256"]) for item in part]
        for name, part in doc["splits"].items()
    }
