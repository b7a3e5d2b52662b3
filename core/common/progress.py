"""Progress for long work, as a terminal bar (tqdm) fed by ``(stage, done, total)`` calls."""

from __future__ import annotations

import sys

from tqdm import tqdm


class ProgressBars:
    """A ``ProgressFn`` that shows one bar per stage; call ``close`` at the end."""

    LABELS = {"load": "loading images", "train": "training", "generate": "generating parts"}

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar: tqdm | None = None
        self._stage = ""
        self._round = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None or stage != self._stage or done < (self._bar.n or 0):
            self.close()
            self._stage = stage
            self._round += 1 if stage == "train" else 0
            label = self.LABELS.get(stage, stage)
            if stage == "train":
                label = f"{label} (epoch {self._round})"
            self._bar = tqdm(total=total, desc=label, unit="step" if stage == "train" else "img",
                             leave=False, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
