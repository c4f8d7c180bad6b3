"""One scan of the media roots, and resolution of rows to ``(path, offset within the file, kind)``.

Why an index: a per-row ``os.path.exists`` over four or five candidate names costs 1M stats for 200k rows;
one ``scandir`` walk costs one ``getdents`` per folder.  The same scan yields the names, sizes and mtimes
that make up the cache fingerprint, so freshness costs nothing extra.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import fsspec
import pyarrow as pa

from .segments import AUDIO_EXTENSIONS, MEDIA_EXTENSIONS, VIDEO_EXTENSIONS, parse_stem_fast

logger = logging.getLogger(__name__)


class MediaFile(NamedTuple):
    """One file found under a media root (a NamedTuple: 200k of them are made per scan)."""

    path: str  # absolute local path or full fsspec URL
    relpath: str  # POSIX path relative to its root
    kind: str  # "audio" | "video"
    size: int
    mtime: float


_KINDS = {ext: "audio" for ext in AUDIO_EXTENSIONS} | {ext: "video" for ext in VIDEO_EXTENSIONS}


@dataclass(frozen=True)
class Resolution:
    """Where a row's media lives: the file, where ``start`` lies inside it, and whether it is trimmed."""

    path: str
    offset: float
    kind: str
    trimmed: bool


@dataclass
class MediaIndex:
    """Names under one or more media roots, keyed every way a row can ask for them.

    Keys: ``ms:{ytid}_{start_ms}_{end_ms}`` (millisecond and 3-decimal names), ``s:{ytid}_{start_s}``
    (VGGSound's ``{ytid}_{start:06d}``), ``t:{ytid}_{start_ms}`` (AudioSet's one-time ``{ytid}_{start:.3f}``)
    and ``w:{ytid}`` (whole videos); ``by_relpath`` maps exact
    relative paths, for user templates and corpora with their own layouts.  Each key holds at most one audio and
    one video file; the first root listed wins, so a user can shadow a mirror with local fixes.
    """

    roots: tuple[str, ...] = ()
    files: dict[str, dict[str, MediaFile]] = field(default_factory=dict)
    by_relpath: dict[str, MediaFile] = field(default_factory=dict)
    namings: set[str] = field(default_factory=set)  # which key prefixes occur ("ms", "s", "t", "w")
    _tables: dict[str, tuple] = field(default_factory=dict, repr=False)
    fingerprint: str = "empty"
    num_files: int = 0

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def scan(cls, roots: str | os.PathLike | Sequence[str | os.PathLike] | None) -> MediaIndex:
        """Walk every root once (any depth; local folders or fsspec URLs)."""
        root_list = normalize_roots(roots)
        index = cls(roots=tuple(root_list))
        lines: list[str] = []
        add = index._add
        for root in root_list:
            lines.append(f"root\0{root}")
            for relpath, path, size, mtime in _walk(root):
                lines.append(f"{relpath}\0{size}\0{mtime}")
                add(path, relpath, size, mtime)
        # In listing order: a file system lists an unchanged folder the same way, and a changed order can
        # only cost a spurious cache miss, never a stale hit.  (Sorting 200k names cost ~0.3 s.)
        digest = hashlib.sha256("\n".join(lines).encode("utf-8", "surrogatepass")).hexdigest()
        index.fingerprint = digest[:16] if root_list else "empty"
        return index

    def _add(self, path: str, relpath: str, size: int, mtime: float) -> None:
        base = relpath.rsplit("/", 1)[-1]
        stem, _, ext = base.rpartition(".")
        kind = _KINDS.get(ext.lower())
        if kind is None or not stem:
            return
        mf = MediaFile(path, relpath, kind, size, mtime)
        self.num_files += 1
        self.by_relpath.setdefault(relpath, mf)
        parsed = parse_stem_fast(stem)
        if parsed is None:
            return
        ytid, start, end = parsed
        if start is not None and end is None and "." in stem:  # AudioSet's one-time {ytid}_{start:.3f}
            self.namings.add("t")
            self._put(f"t:{ytid}_{int(round(start * 1000))}", mf)
            return
        self.namings.add("w" if start is None else "s" if end is None else "ms")
        if start is None:
            self._put("w:" + ytid, mf)
        elif end is None:
            self._put(f"s:{ytid}_{int(start)}", mf)
        else:
            self._put(f"ms:{ytid}_{int(round(start * 1000))}_{int(round(end * 1000))}", mf)

    def _put(self, key: str, mf: MediaFile) -> None:
        slot = self.files.get(key)
        if slot is None:
            self.files[key] = {mf.kind: mf}
        elif mf.kind not in slot:
            slot[mf.kind] = mf

    # -- lookups ----------------------------------------------------------------------------------
    def get(self, key: str, kind: str) -> MediaFile | None:
        slot = self.files.get(key)
        return None if slot is None else slot.get(kind)

    def lookup_relpath(self, relpath: str) -> MediaFile | None:
        """The file at exactly ``relpath`` under the first root that has it."""
        return self.by_relpath.get(relpath)

    def relpath_slot(self, relpath: str) -> dict[str, MediaFile] | None:
        """``{kind: file}`` for an exact relative path, shaped like the name-keyed slots."""
        mf = self.by_relpath.get(relpath)
        return None if mf is None else {mf.kind: mf}

    def naming_table(self, naming: str) -> tuple[pa.Array, list[dict[str, MediaFile]]]:
        """Keys of one naming (without prefix) as an Arrow array, and the slots in the same order.

        Built once per index; ``pyarrow.compute.index_in`` then resolves a whole column in C++.
        """
        cached = self._tables.get(naming)
        if cached is None:
            prefix = naming + ":"
            keys, slots = [], []
            for key, slot in self.files.items():
                if key.startswith(prefix):
                    keys.append(key[len(prefix):])
                    slots.append(slot)
            cached = (pa.array(keys, pa.string()), slots)
            self._tables[naming] = cached
        return cached

    def __len__(self) -> int:
        return self.num_files


def normalize_roots(roots: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[str]:
    """A root or a list of roots as absolute local paths / URLs, in the order given, without duplicates."""
    if roots is None:
        return []
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    out: list[str] = []
    for root in roots:
        text = os.fspath(root)
        if "://" not in text:
            text = os.path.abspath(os.path.expanduser(text))
        else:
            text = text.rstrip("/")
        if text not in out:
            out.append(text)
    return out


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


def _walk(root: str) -> Iterable[tuple[str, str, int, float]]:
    """Yield ``(relpath, path, size, mtime)`` for every media file under ``root``."""
    if "://" in root:
        yield from _walk_fsspec(root)
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
                        continue
                    st = entry.stat(follow_symlinks=True)
                except OSError:
                    continue
                yield rel, entry.path, st.st_size, st.st_mtime


def _walk_fsspec(root: str) -> Iterable[tuple[str, str, int, float]]:
    fs, path = fsspec.core.url_to_fs(root)
    base = path.rstrip("/")
    for full, info in fs.find(base, detail=True).items():
        rel = full[len(base):].lstrip("/")
        ext = rel.rsplit(".", 1)[-1].lower() if "." in rel else ""
        if ext not in MEDIA_EXTENSIONS:
            continue
        yield rel, _join(root, rel), int(info.get("size") or 0), _stable_mtime(info)


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


# ---------------------------------------------------------------------------------------------------
# user templates: the one template language lives in ``templates``; these names stay importable from here.

from .templates import (  # noqa: E402, F401 - re-exported for modules that import them from media_index
    TemplateFormatter,
    check_pattern,
    pattern_is_trimmed,
    render_template,
    template_fields,
    template_values,
)

# ---------------------------------------------------------------------------------------------------
# one scan per load: the API scans (for the cache fingerprint) and registers; builders look it up here,
# including forked DataLoader workers, which inherit it.

_INDEXES: dict[tuple[str, ...], MediaIndex] = {}


def register_index(index: MediaIndex) -> MediaIndex:
    """Make ``index`` the one builders in this process use for its roots."""
    _INDEXES[index.roots] = index
    return index


def get_index(roots: str | os.PathLike | Sequence[str | os.PathLike] | None) -> MediaIndex:
    """The registered index for ``roots``, scanning once if this process has none yet."""
    key = tuple(normalize_roots(roots))
    index = _INDEXES.get(key)
    if index is None:
        index = register_index(MediaIndex.scan(list(key)))
    return index
