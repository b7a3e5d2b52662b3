"""The software trigger on generated conveyor frames: one shot per part, centred, never per frame."""

from __future__ import annotations

import cv2
import numpy as np
from source_helpers import conveyor_frames

from core.sources.trigger import EveryFrame, PresenceTrigger, make_trigger


def _shots(trigger: PresenceTrigger, frames: list[np.ndarray]) -> list:  # type: ignore[type-arg]
    return [s for i, f in enumerate(frames) if (s := trigger.feed(f, i)) is not None]


def test_each_passing_part_is_taken_once_near_the_centre() -> None:
    trigger = PresenceTrigger()
    shots = _shots(trigger, conveyor_frames(6, step_px=7))
    assert len(shots) == 6 and all(s.error is None for s in shots)
    for shot in shots:
        blob = trigger.find(shot.image)
        assert blob is not None and blob.inside and blob.offset <= 0.05


def test_fast_parts_are_taken_at_their_closest_frame() -> None:
    # 23 px per frame on a 160 px frame: the part is never exactly in the middle.
    shots = _shots(PresenceTrigger(), conveyor_frames(4, step_px=23))
    assert len(shots) == 4 and all(s.error is None for s in shots)


def test_a_part_that_stops_under_the_camera_is_taken_once() -> None:
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(40):
        frame = np.clip(rng.normal(18, 4, (120, 160)), 0, 255).astype(np.uint8)
        cv2.circle(frame, (80, 60), 24, 210, -1)
        frames.append(frame)
    frames += [np.clip(rng.normal(18, 4, (120, 160)), 0, 255).astype(np.uint8) for _ in range(5)]
    frames += frames[:10]  # the next part stops too
    assert len(_shots(PresenceTrigger(), frames)) == 2


def test_a_part_passing_off_centre_is_reported_not_lost() -> None:
    rng = np.random.default_rng(2)
    frames = []
    for x in range(-20, 181, 8):
        frame = np.clip(rng.normal(18, 4, (120, 160)), 0, 255).astype(np.uint8)
        cv2.circle(frame, (x, 22), 14, 210, -1)  # along the top edge of the frame
        frames.append(frame)
    frames += [np.clip(rng.normal(18, 4, (120, 160)), 0, 255).astype(np.uint8) for _ in range(4)]
    shots = _shots(PresenceTrigger(), frames)
    assert len(shots) == 1 and "off-centre" in (shots[0].error or "")


def test_empty_belt_noise_and_lighting_changes_trigger_nothing() -> None:
    rng = np.random.default_rng(3)
    noise = [np.clip(rng.normal(18, 6, (120, 160)), 0, 255).astype(np.uint8) for _ in range(20)]
    flash = [np.full((120, 160), 240, np.uint8) for _ in range(5)]  # the whole frame lit
    assert _shots(PresenceTrigger(), noise + flash + noise) == []


def test_flush_hands_out_the_part_in_view_when_the_stream_breaks() -> None:
    trigger = PresenceTrigger()
    frames = conveyor_frames(1, step_px=7)
    middle = len(frames) // 2 - 2  # the part is approaching the centre
    assert _shots(trigger, frames[:middle]) == []
    shot = trigger.flush()
    assert shot is not None and shot.frame_no == middle - 1
    assert trigger.flush() is None


def test_every_frame_and_names() -> None:
    frame = np.zeros((4, 4), np.uint8)
    assert EveryFrame().feed(frame, 7) is not None
    assert isinstance(make_trigger("every-frame"), EveryFrame)
    assert isinstance(make_trigger(None), PresenceTrigger)
