"""Re-hashing the media files of a station against the hashes its chain holds (``verify-log --media``).

Decisions written since revision 0003 carry the SHA-256 of their image and heatmap in their
chain link, so a file that was replaced or deleted is found here, while the chain walk proves the
recorded hashes themselves. Older decisions recorded no hash: their files are only checked to
exist. A decision removed by retention has no row any more, and its files are gone legitimately.
"""

from __future__ import annotations

from sqlalchemy import select

from core.common.fileio import sha256_file
from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.media import media_path
from core.storage.records import MediaProblem, MediaVerification
from core.storage.schema import DecisionRow, Station


def verify_media(context: LogContext, station: str | None = None) -> MediaVerification:
    """Check every media file of a station's live decisions (this log's station by default).

    Raises:
        KeyError: No station of that name.
        StorageError: The database cannot be read.
    """
    name = station or context.station
    d = DecisionRow
    problems: list[MediaProblem] = []
    files = unhashed = 0
    with environment_errors(context.where), context.engine.connect() as connection:
        station_id = connection.scalar(select(Station.id).where(Station.name == name))
        if station_id is None:
            if station is None:
                return MediaVerification(station=name, files=0, unhashed=0, problems=())
            raise KeyError(f"no station {name!r} in the visual log")
        query = (
            select(d.part_id, d.image_path, d.image_sha256, d.heatmap_path, d.heatmap_sha256)
            .where(d.station_id == station_id)
            .order_by(d.seq)
        )
        with connection.execution_options(yield_per=2000).execute(query) as rows:
            for part_id, image, image_sha, heatmap, heatmap_sha in rows:
                for relative, expected in ((image, image_sha), (heatmap, heatmap_sha)):
                    if relative is None:
                        continue
                    files += 1
                    unhashed += expected is None
                    problem = _check(context, relative, expected)
                    if problem is not None:
                        problems.append(MediaProblem(part_id=part_id, path=relative, problem=problem))
    return MediaVerification(station=name, files=files, unhashed=unhashed, problems=tuple(problems))


def _check(context: LogContext, relative: str, expected: str | None) -> str | None:
    try:
        path = media_path(context.media_root, relative)
    except ValueError:
        return "changed"  # a path outside the media root was never written by the log
    try:
        actual = sha256_file(path) if expected is not None else None
        if expected is None and not path.is_file():
            return "missing"
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "changed"
    if expected is not None and actual != expected:
        return "changed"
    return None
