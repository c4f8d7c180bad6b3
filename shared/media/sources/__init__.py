"""Media sources: where a corpus' media already lives, whatever its form.

``media_dir`` may name folders, ``.zip``, ``.tar``, ``.tar.gz``/``.tgz`` (WebDataset shards are tars),
Parquet files with a media struct column, or folders / globs holding any mix of them, local or as fsspec
URLs (``https://``, ``s3://``, ``hf://datasets/<repo>[@rev]/<path>``).  This package answers "which bytes
serve this row" for all of them, through one interface, :class:`~.base.MediaSource` (one class per kind,
chosen in one registry, :mod:`.registry`); see ``docs/architecture-sources.md``:

- :mod:`.base` holds the interface and one class per kind (folder, zip, tar, tgz, Parquet);
  :mod:`.registry` maps kinds to classes; :mod:`.kinds` names the kind of a root from its name and expands
  folders and globs into sources;
- :mod:`.records` holds the one ``Member`` and the one ``SourceStats`` type;
- :mod:`.keys` is the one rule set rows are matched by: member names -> keys (``keys_for_member``,
  ``side_keys``) and rows -> keys (``row_keys``), for both halves;
- random access (map-style loads, ``decode``, ``verify``, export): the low-level readers :mod:`.zipsrc`
  (central directory), :mod:`.tarsrc` (header index), :mod:`.parquetsrc` (footer + key columns), all
  through :mod:`.ranged` byte ranges; :mod:`.access` caches their indexes and reads any media path
  (``read_media_bytes``); :mod:`.locator` is the self-describing ``path`` of a member;
- archive order (streaming, ``unpack``, ``fetch --source``): each kind's pass (:mod:`.members_tar`,
  :mod:`.members_zip`, :mod:`.members_parquet`, :func:`.folder.iter_folder`) under the rules of
  :mod:`.members`, reading through :mod:`.sequential` (read-ahead, progress lines); :mod:`.row_join` joins
  members to rows; :mod:`.stream` runs streaming passes and makes their tables; :mod:`.folder` walks folders;
- :mod:`.clip_or_video` decides, per member and the same way in both halves, what a file named by the
  YouTube id alone holds (``segment_offset``).
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

__all__ = ["ARCHIVE_KINDS", "ID_NAMED", "FolderSource", "MediaSource", "Member", "ParquetSource", "Source",
           "SourceIndex", "SourceStats", "TarGzSource", "TarSource", "ZipSource", "expand_sources", "index_source",
           "is_member", "keys_for_member", "make_locator", "media_source", "media_sources", "member_kind",
           "open_media", "parse_locator", "read_media_bytes", "source_kind"]
