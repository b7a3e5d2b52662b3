"""Where parts come from: hot folders, cameras and video files, behind one ``Source`` interface.

Public face: ``Source``, ``SourceStatus``, ``Backpressure``, ``ContentLookup`` (``base``) and
``open_source`` (``registry``). The sources themselves: ``hotfolder``, ``camera`` (with ``live``
and ``trigger``), ``genicam``. Depends on ``core.common`` and ``core.imaging`` only.
"""

from core.sources.base import Backpressure, ContentLookup, Source, SourceStatus, parse_spec
from core.sources.registry import open_source

__all__ = ["Backpressure", "ContentLookup", "Source", "SourceStatus", "open_source", "parse_spec"]
