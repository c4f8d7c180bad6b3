"""Member locators: one string that says where an archive member's bytes are, with no state behind it.

A locator is what the resolver stores as a media ``path`` when the media lives inside an archive or a
Parquet file.  It must survive Arrow storage, pickling and forked DataLoader workers, and be readable in a
log line, so it is plain text that holds everything a reader needs::

    avsets:zip:o=1234,c=5678,m=8,s=9000,crc=305419896,n=27:https://host/clips.zip!/sub/abc_30000_40000.mp4
    avsets:tar:o=1536,s=9000,n=24:/data/vggsound_00.tar!/vid/abc_000030.mp4
    avsets:parquet:rg=3,r=17,col=audio,fs=123456,ft=2048,n=40:hf://datasets/o/r/x.parquet!/audio/abc.flac

``n`` is the length of the archive URL, so neither ``!/`` nor ``:`` inside a URL or member name can make the
text ambiguous.  The member name comes last, so ``path.rsplit(".")`` still yields the media extension that
the decoders dispatch on.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

from avsets.core.secrets import redact_text, redact_url

PREFIX = "avsets:"
KINDS = ("zip", "tar", "parquet")
_SEP = "!/"


@dataclass(frozen=True)
class Locator:
    """A parsed locator: the archive, the member's name and the kind-specific numbers (``fields``)."""

    kind: str
    archive: str
    member: str
    fields: dict[str, str]

    def num(self, key: str) -> int:
        return int(self.fields[key])

    def __str__(self) -> str:
        return make_locator(self.kind, self.archive, self.member, self.fields)


def make_locator(kind: str, archive: str, member: str, fields: dict[str, object]) -> str:
    """The locator text for ``member`` of ``archive`` (values are percent-quoted; ``n`` is added)."""
    parts = [f"{k}={quote(str(v), safe='')}" for k, v in fields.items() if k != "n"]
    parts.append(f"n={len(archive)}")
    return f"{PREFIX}{kind}:{','.join(parts)}:{archive}{_SEP}{member}"


def is_member(path: object) -> bool:
    """True when ``path`` is a member locator (cheap: a prefix test, no parsing)."""
    return isinstance(path, str) and path.startswith(PREFIX) and path[len(PREFIX):].split(":", 1)[0] in KINDS


def parse_locator(path: str) -> Locator:
    """Split a locator into its parts; ``ValueError`` naming the text when it is not one."""
    try:
        if not path.startswith(PREFIX):
            raise ValueError("no avsets: prefix")
        kind, rest = path[len(PREFIX):].split(":", 1)
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        head, rest = rest.split(":", 1)
        fields = {}
        for part in head.split(","):
            key, _, value = part.partition("=")
            fields[key] = unquote(value)
        n = int(fields["n"])
        archive, sep, member = rest[:n], rest[n:n + 2], rest[n + 2:]
        if sep != _SEP or not archive or not member:
            raise ValueError("archive length does not match")
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{path[:200]!r} is not a valid avsets member locator ({exc})") from None
    return Locator(kind, archive, member, fields)


def public_path(path: str) -> str:
    """A media path as it may be written or shown: an archive URL's credentials masked
    (:func:`avsets.core.secrets.redact_url`), a locator still valid and still naming its member."""
    if is_member(path):
        try:
            loc = parse_locator(path)
        except ValueError:
            return redact_text(path) or ""
        return make_locator(loc.kind, redact_url(loc.archive) or "", loc.member, loc.fields)
    return redact_url(path) or ""
