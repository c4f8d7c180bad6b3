"""What a source text names, read from the text alone: its file-name part and the archive kind it announces.

Why a module of its own, in the core layer: the fetch ledger (metadata) must tell an archive URL from a folder
without a request, and the media sources (``avsets.media.sources.kinds``) decide kinds by the same rule; kept
here, below both, the rule is written once and imports still run one way.  Standard library only.
"""

from __future__ import annotations

import urllib.parse
from typing import Literal

SourceKind = Literal["folder", "zip", "tar", "tgz", "parquet"]
ARCHIVE_KINDS: frozenset[str] = frozenset({"zip", "tar", "tgz", "parquet"})

# Longest suffix first: ".tar.gz" must win over ".gz".
_SUFFIXES: tuple[tuple[str, SourceKind], ...] = (
    (".tar.gz", "tgz"),
    (".tgz", "tgz"),
    (".tar", "tar"),
    (".zip", "zip"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
)
_ENDINGS = tuple(suffix for suffix, _ in _SUFFIXES)


def url_path(url: str) -> str:
    """The part of a source text that names the file: for an ``http(s)://`` URL its path, without the query
    (``?X-Amz-Signature=...`` of a presigned URL) or fragment; any other text as it is (a ``?`` in a local
    or ``s3://`` name is a glob character, in an HTTP URL it starts the query)."""
    if url[:8].lower().startswith(("http://", "https://")):
        try:
            return urllib.parse.urlsplit(url).path
        except ValueError:
            return url.split("?", 1)[0].split("#", 1)[0]
    return url


def source_kind(url: str) -> SourceKind | None:
    """The archive kind a file name announces, or ``None`` for anything else (a folder, a media file).

    Decided by the name alone: a remote listing costs a request, and mirrors name their files honestly
    (``vggsound_00.tar.gz``, ``train-00000-of-00042.parquet``).
    """
    name = url_path(url).rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix, kind in _SUFFIXES:
        if name.endswith(suffix):
            return kind
    return None


