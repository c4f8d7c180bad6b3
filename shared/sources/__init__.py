"""Media sources: where a corpus' media already lives, whatever its form.

``media_dir`` may name folders, ``.zip``, ``.tar``, ``.tar.gz``/``.tgz`` (WebDataset shards are tars),
Parquet files with a media struct column, or folders / globs holding any mix of them, local or as fsspec
URLs (``https://``, ``s3://``, ``hf://datasets/<repo>[@rev]/<path>``).  This package answers "which bytes
serve this row" for all of them, through one interface, :class:`~.base.MediaSource` (one class per kind,
chosen in one registry, :mod:`.registry`); see ``docs/architecture-sources.md``:

- :mod:`.kinds` classifies a root and expands folders and globs into sources (shared by every caller);
- :mod:`.keys` turns a member name into the index keys rows are matched by (``keys_for_member``);
- random access for map-style loads, ``decode``, ``verify`` and export: :mod:`.zipsrc` (central directory),
  :mod:`.tarsrc` (header index), :mod:`.parquetsrc` (footer + key columns), all through :mod:`.ranged`
  byte ranges; :mod:`.access` caches their indexes and reads any media path (``open_media``,
  ``read_media_bytes``); :mod:`.locator` is the self-describing ``path`` of a member;
- :mod:`.clip_or_video` decides what a file named by the YouTube id alone holds;
- archive-order streaming for ``.tar.gz`` (and as the fast path for tar and Parquet when streaming).
"""

from .access import SourceIndex, index_source, open_media, read_media_bytes
from .base import (
           FolderSource,
           MediaSource,
           ParquetSource,
           TarGzSource,
           TarSource,
           ZipSource,
           media_source,
           media_sources,
)
from .clip_or_video import ID_NAMED
from .keys import keys_for_member, member_kind
from .kinds import ARCHIVE_KINDS, Source, expand_sources, source_kind
from .locator import is_member, make_locator, parse_locator
from .records import Member, SourceStats

__all__ = ["ARCHIVE_KINDS", "FolderSource", "MediaSource", "ParquetSource", "TarGzSource", "TarSource", "ZipSource",
           "Member", "SourceStats", "media_source", "media_sources", "ID_NAMED", "Source", "SourceIndex", "expand_sources", "index_source", "is_member",
           "keys_for_member", "make_locator", "member_kind", "open_media", "parse_locator", "read_media_bytes",
           "source_kind"]
