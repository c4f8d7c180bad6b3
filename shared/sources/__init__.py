"""Media sources: where a corpus' media already lives, whatever its form.

``media_dir`` may name folders, ``.zip``, ``.tar``, ``.tar.gz``/``.tgz`` (WebDataset shards are tars),
Parquet files with a media struct column, or folders / globs holding any mix of them, local or as fsspec
URLs (``https://``, ``s3://``, ``hf://datasets/<repo>[@rev]/<path>``).  This package answers "which bytes
serve this row" for all of them:

- :mod:`.kinds` classifies a root and expands folders and globs into sources (shared by every caller);
- random access (zip central directory, tar member index, Parquet footer) for map-style loads, ``decode``
  and ``verify``;
- archive-order streaming for ``.tar.gz`` (and as the fast path for tar and Parquet when streaming).
"""

from .kinds import ARCHIVE_KINDS, Source, expand_sources, source_kind

__all__ = ["ARCHIVE_KINDS", "Source", "expand_sources", "source_kind"]
