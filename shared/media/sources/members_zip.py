"""A zip read front to back, in stored order (the archive-order half of the zip kind).

Members are inflated from their local headers, bounded by their declared size (:func:`.zipsrc.read_local_member`);
a member failing its CRC or its inflate is lost alone (counted, named), since the central directory still
says where every later member is.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from collections.abc import Iterator

from avsets.core.errors import MediaError, MediaSourceError
from avsets.core.segments import MEDIA_EXTENSIONS

from .kinds import Source
from .members import Want, admit, damaged, public_url
from .ranged import is_local, open_seekable
from .records import Member, SourceStats
from .sequential import ArchiveProgress, remote_size
from .zipsrc import read_local_member

logger = logging.getLogger("avsets")

def iter_zip(source: Source, stats: SourceStats, want: Want | None, key_column: str | None = None
             ) -> Iterator[Member]:
    """Every usable member of a zip in stored order (by local header offset), its bytes in ``data``; a
    member damaged on its own is counted and skipped (``key_column``: unused, the shared signature)."""
    try:
        f = open_seekable(source.url) if "://" in source.url else open(source.url, "rb")  # noqa: SIM115
    except (OSError, ValueError) as exc:
        raise MediaSourceError(f"cannot open archive: {type(exc).__name__}: {exc}", source=public_url(source.url)) from None
    progress = None if "://" not in source.url or is_local(source.url) else ArchiveProgress(source, stats)
    if progress is not None:
        progress.opened(remote_size(f))
    try:
        try:
            zf = zipfile.ZipFile(f)
            infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise damaged(source, stats, exc) from None
        for info in infos:
            stats.members += 1
            if info.is_dir():
                continue
            got = admit(info.filename, info.file_size, want, stats)
            if got is None:
                continue
            bare = got[0]
            name = bare.relpath
            try:
                if info.flag_bits & 1 or info.compress_type not in (0, 8, 12):
                    data = zf.read(info)
                else:  # bounded by the declared size: a zip bomb stops there, named (zipsrc.inflate)
                    data = read_local_member(zf.fp, info.header_offset, info.compress_size, info.compress_type,
                                             info.file_size, info.CRC, name)
            except (zipfile.BadZipFile, EOFError, zlib.error, ValueError, NotImplementedError, MediaError) as exc:
                # this member's bytes are bad (CRC, inflate, method, past its declared size): it alone is lost,
                # counted and named; the central directory still says where every later member is
                stats.note_damaged(name)
                logger.warning("avsets: %s!/%s is damaged (%s: %s); skipped, the archive's other members are "
                               "read", public_url(source.url), name, type(exc).__name__, str(exc)[:200])
                continue
            except OSError as exc:  # the file itself failed (network, I/O): the pass cannot go on
                raise damaged(source, stats, exc) from None
            stats.bytes_read += info.compress_size
            stats.media += got[1] in MEDIA_EXTENSIONS
            if progress is not None:
                progress.tick(stats.bytes_read)
            yield bare._replace(data=data)
    finally:
        f.close()
