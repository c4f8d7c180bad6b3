"""Folder sources: one walk of a media folder (local or fsspec) that yields its media files and finds the
archives below it, so a folder root costs one ``scandir`` per sub-folder whatever it holds; the folder's
archive-order pass (:func:`iter_folder`) reads the files that walk finds."""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterable, Iterator

import fsspec

from avsets.core.segments import MEDIA_EXTENSIONS

from .kinds import Source, source_kind
from .members import Want, public_url
from .records import Member, SourceStats

logger = logging.getLogger("avsets.media.media_index")


def _join(root: str, relpath: str) -> str:
    if "://" in root:
        return root + "/" + relpath
    return os.path.join(root, *relpath.split("/"))


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def walk(root: str, archives: list[str] | None = None) -> Iterable[tuple[str, str, int, float]]:
    """Yield ``(relpath, path, size, mtime)`` for every media file under ``root``; archives and Parquet
    files met on the way are appended to ``archives`` (one walk serves both)."""
    if "://" in root:
        yield from walk_fsspec(root)
        return
    if not os.path.isdir(root):
        raise FileNotFoundError(f"media_dir {root!r} is not a folder")
    real_root = os.path.realpath(root)
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as exc:  # unreadable folder: say so, keep going
            logger.warning("cannot read media folder %s: %s", folder, exc)
            continue
        with it:
            for entry in it:
                name = entry.name
                rel = prefix + name
                if not name.isascii() and not _utf8(name):
                    # os gives undecodable bytes as surrogates, which no Arrow string or decoder accepts
                    logger.warning("ignoring %r: its name is not valid UTF-8 (rename it to use it)", entry.path)
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((rel + "/", entry.path))
                        continue
                    if entry.is_symlink():
                        # A link may point anywhere; only follow it when its target stays in the root.
                        target = os.path.realpath(entry.path)
                        if os.path.commonpath([target, real_root]) != real_root:
                            logger.warning("ignoring %s: symlink leaves the media root", entry.path)
                            continue
                        if os.path.isdir(target):
                            continue
                    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
                    if ext not in MEDIA_EXTENSIONS or name.startswith("."):
                        if archives is not None and not name.startswith(".") and source_kind(name) is not None:
                            archives.append(entry.path)
                        continue
                    st = entry.stat(follow_symlinks=True)
                except OSError:
                    continue
                yield rel, entry.path, st.st_size, st.st_mtime


def walk_fsspec(root: str) -> Iterable[tuple[str, str, int, float]]:
    fs, path = fsspec.core.url_to_fs(root)
    base = path.rstrip("/")
    for full, info in fs.find(base, detail=True).items():
        rel = full[len(base):].lstrip("/")
        ext = rel.rsplit(".", 1)[-1].lower() if "." in rel else ""
        if ext not in MEDIA_EXTENSIONS:
            continue
        size = info.get("size")  # an HTTP listing states no size: unknown (-1) is not empty (0)
        yield rel, _join(root, rel), -1 if size is None else int(size), _stable_mtime(info)


def _stable_mtime(info: dict) -> float:
    """A file system's modification time as float seconds, the same in every process.

    Object stores report ``datetime`` objects or text; ``hash()`` of text is salted per process, which
    would change the cache fingerprint on every run, so text falls back to a CRC instead.
    """
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or 0
    if hasattr(mtime, "timestamp"):
        return float(mtime.timestamp())
    try:
        return float(mtime)
    except (TypeError, ValueError):
        return float(zlib.crc32(str(mtime).encode()))


def iter_folder(source: Source, stats: SourceStats, want: Want | None, key_column: str | None = None
                ) -> Iterator[Member]:
    """A folder's media files with their bytes, in walk order (the archive-order half of the folder kind);
    a file ``want`` refuses is not read, one that cannot be read is logged and skipped."""
    try:
        files = list(walk(source.url))
    except FileNotFoundError:
        return
    for relpath, path, size, _mtime in files:
        stats.members += 1
        bare = Member(relpath, path, size)
        if want is not None and not want(bare):
            continue
        try:
            if "://" in path:
                with fsspec.open(path, "rb") as f:
                    data = f.read()
            else:
                with open(path, "rb") as f:
                    data = f.read()
        except OSError as exc:
            logger.warning("cannot read %s: %s", public_url(path), exc)
            continue
        stats.bytes_read += len(data)
        stats.media += 1
        yield bare._replace(data=data)


def has_loose_media(url: str) -> bool:
    """Whether a folder holds media files of its own (not only archives): one early-exit walk."""
    if "://" in url:
        try:
            fs, path = fsspec.core.url_to_fs(url)
            return any(p.rsplit(".", 1)[-1].lower() in MEDIA_EXTENSIONS for p in fs.find(path))
        except (OSError, ValueError):
            return False
    for _folder, dirs, files in os.walk(url):
        dirs.sort()
        if any(not f.startswith(".") and f.rsplit(".", 1)[-1].lower() in MEDIA_EXTENSIONS for f in files):
            return True
    return False
