"""Credentials never leave in what we write: ``redact_url`` and ``redact_text``.

Why one helper: a mirror URL given by a user may carry ``user:password@`` or a signed query
(``?X-Amz-Signature=...``, ``?token=...``, ``?sig=...``), and the same URL reaches the fetch ledger (which
the docs call safe to share, and which is uploaded beside remote outputs), log lines, error messages, cards
and manifests.  Every one of those writes goes through these functions, so a new secret-looking parameter
is added here once.

    >>> redact_url("https://bob:hunter2@mirror.example/v/abc.mp4?token=s3cr3t&quality=hd")
    'https://***@mirror.example/v/abc.mp4?token=***&quality=hd'

What counts as secret: all userinfo (a lone user name is often a token itself, as in
``https://TOKEN@host``) and query parameters whose name is a known credential name or contains
``token``, ``secret``, ``signature``, ``password``, ``credential`` or ``session``, or starts with
``x-amz-``/``x-goog-``/``x-ms-`` (signed cloud URLs).  Names stay, values become ``***``, so a reader still
sees which URL was used.
"""

from __future__ import annotations

import contextlib
import re
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

MASK = "***"

#: Query parameter names (lower case) that hold a credential by convention (AWS, GCS, Azure SAS,
#: CloudFront, generic API keys, YouTube's signed media URLs).
SECRET_PARAMS = frozenset({
    "token", "access_token", "refresh_token", "id_token", "auth", "authorization", "key", "api_key", "apikey",
    "api-key", "sig", "lsig", "signature", "secret", "client_secret", "password", "passwd", "pwd", "pass",
    "policy", "key-pair-id", "credential", "credentials", "session", "sessionid", "code", "hmac", "hash",
    "jwt", "bearer", "private_token", "accesskey", "secretkey", "awsaccesskeyid", "googleaccessid",
})
_SECRET_PARTS = ("token", "secret", "signature", "password", "credential", "session", "apikey", "api_key")
_SECRET_PREFIXES = ("x-amz-", "x-goog-", "x-ms-")

# A URL inside free text (an error message, ffmpeg's stderr): a scheme, then everything up to whitespace or
# a quote/bracket that commonly closes it.
# An archive member locator (``...:https://host/a.zip?sig=X!/member.flac``) ends the URL at ``!/``: the member
# name after it is no secret and says which clip failed.
_URL_IN_TEXT = re.compile(r"""(?i)\b([a-z][a-z0-9+.\-]{1,15}://(?:(?!!/)[^\s'"<>()\[\]{}])+)""")
# ``?name=value`` / ``&name=value`` anywhere (a URL that the pattern above cut short at a brace or bracket).
_PARAM_IN_TEXT = re.compile(r"([?&;#])([A-Za-z0-9_.\-]+)=((?:(?!!/)[^&;#\s'\"])*)")
# ``user:pass@host`` that lost its scheme (``-http_proxy`` echo, a bare host), kept conservative.
_BARE_USERINFO = re.compile(r"(?<![\w/@])([A-Za-z0-9._~%!$&'*+,;=-]+:[^\s/@]+)@(?=[A-Za-z0-9.\-\[])")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter name looks like it carries a credential."""
    n = urllib.parse.unquote_plus(name).strip().lower()
    if n in SECRET_PARAMS or n.startswith(_SECRET_PREFIXES):
        return True
    return any(part in n for part in _SECRET_PARTS)


def redact_url(url: str | None) -> str | None:
    """``url`` without userinfo and with secret-looking query values masked; other text unchanged.

    Safe on anything: ``None`` stays ``None``, a local path or a string that is not a URL comes back as is
    (apart from a ``user:pass@`` it may hold).  Never raises.
    """
    if url is None:
        return None
    text = str(url)
    if "://" not in text:
        return _BARE_USERINFO.sub(MASK + "@", text) if "@" in text else text
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:  # an invalid IPv6 literal and friends: mask conservatively
        return _BARE_USERINFO.sub(MASK + "@", text)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = _redact_query(parts.query)
    fragment = _redact_query(parts.fragment) if "=" in parts.fragment else parts.fragment
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_query(query: str) -> str:
    if not query:
        return query
    out = []
    for piece in re.split(r"([&;])", query):
        if piece in ("&", ";") or "=" not in piece:
            out.append(piece)
            continue
        name, _, _ = piece.partition("=")
        out.append(f"{name}={MASK}" if is_secret_param(name) else piece)
    return "".join(out)


def redact_text(text: str | None) -> str | None:
    """Free text (an error message, a log line, ffmpeg's stderr) with every URL in it redacted."""
    if not text:
        return text
    out = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(1)) or "", str(text))
    out = _PARAM_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}" if is_secret_param(m.group(2))
                             else m.group(0), out)
    if "@" in out:
        out = _BARE_USERINFO.sub(lambda m: m.group(0) if m.group(1).startswith(MASK) else MASK + "@", out)
    return out


class RedactingFilter:
    """A ``logging`` filter that redacts URLs in every record (install it on handlers: ``install_log_filter``)."""

    def filter(self, record: object) -> bool:
        try:
            message = record.getMessage()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a broken record is logging's to report, not ours
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None  # type: ignore[attr-defined]
        return True


def install_log_filter() -> None:
    """Redact every handler of the root logger (the CLI calls this after configuring logging)."""
    import logging

    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


class RedactingStream:
    """A text stream that redacts what passes through it, line by line, before the real stream sees it.

    The CLI writes every command's stdout and stderr through one of these (``redacting_output``), so a
    source printed by any line of any command (a summary, a table, a warning, a third party's message) loses
    its credentials even where the code forgot to call ``redact_url``. Text is held until a line ends (``\n``
    or a progress bar's ``\r``), so a URL written in pieces is still seen whole; ``flush`` lets the rest out.
    Everything else (``isatty``, ``fileno``, ``encoding``) is the wrapped stream's.
    """

    def __init__(self, stream: Any):
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        cut = max(self._pending.rfind("\n"), self._pending.rfind("\r"))
        if cut >= 0:
            ready, self._pending = self._pending[: cut + 1], self._pending[cut + 1 :]
            self._stream.write(redact_text(ready))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            ready, self._pending = self._pending, ""
            self._stream.write(redact_text(ready))
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def redacting_output() -> Iterator[None]:
    """Route ``sys.stdout`` and ``sys.stderr`` through ``RedactingStream`` for the duration (the CLI's guard).

    Log handlers that hold the old streams keep them; they are redacted by ``install_log_filter``.
    """
    saved = sys.stdout, sys.stderr
    out, err = RedactingStream(saved[0]), RedactingStream(saved[1])
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    try:
        yield
    finally:
        for stream in (out, err):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can be said there
                pass
        sys.stdout, sys.stderr = saved


__all__ = ["MASK", "RedactingFilter", "RedactingStream", "redacting_output", "install_log_filter", "SECRET_PARAMS", "is_secret_param", "redact_text", "redact_url"]
