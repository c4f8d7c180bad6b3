"""The one template language: ``media_pattern``, ``--source-url-template`` and archive member patterns.

Why a parser of our own instead of ``str.format``: ``str.format`` lets a field walk into any object it is
given (``{start.__format__.__globals__[os].environ}`` read the Hub token out of the environment), and a
template that only fails on a row fails 10 million times.  Here a template is parsed and checked once,
before any row, and rendering formats plain ``str``/``int``/``float`` values only.

The language (DESIGN "One template language"):

- ``{name}`` or ``{name:spec}``; ``name`` is a row column or one of ``youtube_id``, ``id``, ``start``,
  ``end``, ``start_ms``, ``end_ms``, ``start_s``, ``end_s``, ``label``.  ``{{`` and ``}}`` are literal braces.
- ``spec`` is Python's format-spec mini-language (``{start_s:06d}``, ``{start:.3f}``, ``{label:>10}``),
  with widths and precisions of at most three digits and no nested ``{...}``.
- Refused up front (``TemplateError``, a ``ValueError``): positional fields (``{}``, ``{0}``), attribute or
  index access (``{id.x}``, ``{id[0]}``), conversions (``{id!r}``), a spec that cannot format the field's
  type (``{youtube_id:06d}``), and, where the caller knows the columns, unknown names.
- Values: ``start``/``end`` are seconds printed like ``30`` or ``30.5`` (millisecond precision) unless a
  spec says otherwise; ``*_ms`` and ``*_s`` are integers; a ClassLabel column (``label``) is its name;
  everything else is the column's text.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .errors import AvsetsError, UnsafePathError
from .paths import safe_relpath
from .segments import to_ms

#: Names every row offers (when it has a segment); row columns come on top.
SEGMENT_FIELDS = ("youtube_id", "id", "start", "end", "start_ms", "end_ms", "start_s", "end_s", "label")
#: The type of each segment field: what a spec is checked against before any row (columns: any type).
FIELD_TYPES: dict[str, type] = {"start": float, "end": float, "start_ms": int, "end_ms": int, "start_s": int,
                                "end_s": int, "youtube_id": str, "id": str, "label": str}
START_FIELDS = frozenset({"start", "start_ms", "start_s"})

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# [[fill]align][sign][z][#][0][width][grouping][.precision][type], widths/precisions of at most 3 digits
_SPEC = re.compile(r"(?:.?[<>=^])?[+\- ]?z?#?0?(?P<width>\d{1,3})?[,_]?(?:\.(?P<prec>\d{1,3}))?"
                   r"[bcdeEfFgGnosxX%]?\Z", re.DOTALL)
_SAMPLES: dict[type, object] = {str: "x", int: 7, float: 7.5}

Value = str | int | float


class TemplateError(AvsetsError, ValueError):
    """A template that cannot be used (bad syntax, a forbidden field, a spec that cannot apply)."""


@dataclass(frozen=True)
class Field:
    name: str
    spec: str


@dataclass(frozen=True)
class Template:
    """A parsed, checked template: literal text and fields, in order."""

    text: str
    parts: tuple[str | Field, ...]

    @property
    def fields(self) -> set[str]:
        return {p.name for p in self.parts if isinstance(p, Field)}

    @property
    def prefix(self) -> str:
        """The literal text before the first field (a path template's fixed folder lives in it)."""
        out = []
        for p in self.parts:
            if isinstance(p, Field):
                break
            out.append(p)
        return "".join(out)

    def check_names(self, allowed: Collection[str], *, what: str = "template") -> None:
        """Refuse fields that are neither in ``allowed`` nor segment fields, naming them and the choices."""
        known = set(allowed) | set(SEGMENT_FIELDS)
        unknown = sorted(self.fields - known)
        if unknown:
            choices = ", ".join(sorted(known))
            raise TemplateError(f"{what} {self.text!r} names {', '.join(unknown)}, which is not a column or segment "
                                f"field (choose from: {choices})")

    def render(self, values: Mapping[str, object]) -> str:
        """Fill the template from ``values`` (see ``plain_values``); a missing field is a ``KeyError``."""
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            value = _plain(values[p.name])
            try:
                out.append(_format(value, p.spec))
            except (ValueError, TypeError) as exc:
                raise TemplateError(f"{{{p.name}:{p.spec}}} cannot format {value!r}: {exc}") from None
        return "".join(out)


@lru_cache(maxsize=256)
def parse(text: str, *, what: str = "template") -> Template:
    """Parse and check ``text`` once (cached); raises ``TemplateError`` saying what is wrong."""
    if not isinstance(text, str):
        raise TemplateError(f"{what} must be text, got {type(text).__name__}")
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{what} {text!r} is not a valid template: {exc} (write {{{{ and }}}} for literal "
                            "braces)") from None
    parts: list[str | Field] = []
    for literal, name, spec, conversion in pieces:
        if literal:
            parts.append(literal)
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise TemplateError(f"{what} {text!r} has a positional field {{{name}}}; name it, e.g. {{youtube_id}}")
        if not _NAME.match(name):
            raise TemplateError(f"{what} {text!r}: field {{{name}}} may not use attribute or index access; use a "
                                "plain name such as {youtube_id}")
        if conversion:
            raise TemplateError(f"{what} {text!r}: field {{{name}!{conversion}}} may not use a conversion; drop "
                                f"'!{conversion}'")
        spec = spec or ""
        _check_spec(text, name, spec, what)
        parts.append(Field(name, spec))
    return Template(text, tuple(parts))


def _check_spec(text: str, name: str, spec: str, what: str) -> None:
    if not spec:
        return
    if "{" in spec or "}" in spec or not _SPEC.match(spec):
        raise TemplateError(f"{what} {text!r}: {{{name}:{spec}}} is not a supported format spec (e.g. "
                            "{start_s:06d}, {start:.3f}; widths of at most 3 digits)")
    kinds = [FIELD_TYPES[name]] if name in FIELD_TYPES else [str, int, float]
    for kind in kinds:
        try:
            _format(_SAMPLES[kind], spec)  # type: ignore[arg-type]
            return
        except (ValueError, TypeError):
            continue
    kind_name = kinds[0].__name__ if len(kinds) == 1 else "text or a number"
    raise TemplateError(f"{what} {text!r}: {{{name}:{spec}}} cannot format {name} ({kind_name})")


def _plain(value: object) -> Value:
    """Only ``str``, ``int`` and ``float`` reach ``format``: their ``__format__`` cannot be walked."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    return str(value)


def seconds_text(value: float) -> str:
    """Seconds as ``30`` or ``30.5`` (millisecond precision): what plain ``{start}`` prints."""
    text = f"{round(float(value), 3):.3f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _format(value: Value, spec: str) -> str:
    if type(value) is float and not spec:
        return seconds_text(value) if math.isfinite(value) else str(value)
    return format(value, spec)


def segment_values(youtube_id: str | None, start: float | None, end: float | None, key: str | None = None,
                   ) -> dict[str, Value]:
    """The segment fields of one clip (``start``/``end`` as float seconds, ``*_ms``/``*_s`` as ints)."""
    out: dict[str, Value] = {}
    if youtube_id is not None:
        out["youtube_id"] = str(youtube_id)
    if key is not None:
        out["id"] = str(key)
    for name, value in (("start", start), ("end", end)):
        if value is None:
            continue
        v = float(value)
        if not math.isfinite(v):
            continue
        out[name] = v
        out[f"{name}_ms"] = to_ms(v)
        out[f"{name}_s"] = int(v)
    return out


def plain_values(row: Mapping[str, object], label_names: Mapping[str, Sequence[str]] | None = None,
                 ) -> dict[str, Value]:
    """A row's values for rendering: ClassLabel ints become names, lists are joined with commas, times gain
    ``start_ms``/``start_s``/... (``None`` values are left out, so a template naming them is a miss)."""
    values: dict[str, Value] = {}
    label_names = label_names or {}
    for key, value in row.items():
        if value is None:
            continue
        names = label_names.get(key)
        if names is not None and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            values[key] = names[value]
        elif names is not None and isinstance(value, list):
            values[key] = ",".join(names[v] if isinstance(v, int) and 0 <= v < len(names) else str(v) for v in value)
        elif isinstance(value, list):
            values[key] = ",".join(str(v) for v in value)
        else:
            values[key] = _plain(value)
    for name in ("start", "end"):
        value = row.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            values[name] = float(value)
            values[f"{name}_ms"] = to_ms(value)
            values[f"{name}_s"] = int(float(value))
    return values


# --- the names media_index used to own (re-exported there; other modules import them from either) -------


class TemplateFormatter(string.Formatter):
    """Compatibility shim: ``format`` through ``parse`` (so the same rules apply), for callers that held the
    old ``string.Formatter`` subclass."""

    def vformat(self, format_string, args, kwargs):  # noqa: ANN001, ANN201, D102 - stdlib signature
        if args:
            raise TemplateError("templates take named fields only")
        return parse(format_string).render(kwargs)


def template_fields(template: str) -> set[str]:
    """The field names of a template (``{label}`` -> ``label``); ``TemplateError`` when it is not valid."""
    return parse(template).fields


def template_values(row: dict, label_names: dict[str, Sequence[str]] | None = None) -> dict[str, Value]:
    """A row's values as template values (see ``plain_values``)."""
    return plain_values(row, label_names)


def render_template(template: str, values: Mapping[str, object]) -> str:
    """Fill a template; a missing field is a ``KeyError`` naming it, a bad one a ``TemplateError``."""
    return parse(template).render(values)


def pattern_is_trimmed(template: str) -> bool:
    """A pattern whose file name holds a start field names a trimmed clip; otherwise a whole video."""
    filename = template.replace("\\", "/").rsplit("/", 1)[-1]
    try:
        return bool(parse(filename).fields & START_FIELDS)
    except TemplateError:  # the split cut a field in two ("{a/b}"): judge the whole template
        return bool(template_fields(template) & START_FIELDS)


def check_pattern(template: str, columns: Collection[str] | None = None, *, what: str = "media_pattern") -> None:
    """Refuse a path pattern (``media_pattern``, a member pattern) that is not valid or could leave its root,
    before any row is read.  With ``columns``, unknown field names are refused too."""
    try:
        tpl = parse(template, what=what)
        if columns is not None:
            tpl.check_names(columns, what=what)
    except TemplateError as exc:
        raise UnsafePathError(str(exc)) from None
    probe = {name: (_SAMPLES[FIELD_TYPES[name]] if name in FIELD_TYPES else "x") for name in tpl.fields}
    safe_relpath(tpl.render(probe), what=what)


__all__ = [
    "FIELD_TYPES", "SEGMENT_FIELDS", "Template", "TemplateError", "TemplateFormatter", "check_pattern", "parse",
    "pattern_is_trimmed", "plain_values", "render_template", "seconds_text", "segment_values", "template_fields",
    "template_values",
]
