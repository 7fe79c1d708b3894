"""Parse and validate complaint batch uploads (JSON, JSON Lines, CSV) into `ComplaintIn` rows.

Pure functions, no I/O: the batches router hands over the raw body and its content type, stores
the accepted rows and reports the errors. Policy, so that the API docs can state it:

- A row with any error is rejected as a whole; every other row is kept.
- JSON / JSON Lines: an unknown key rejects its row (the client sent a wrong shape, and guessing
  which value it meant would store wrong data). CSV: an unknown column is reported once, with
  ``row=None``, and ignored; its rows are still accepted (spreadsheets carry stray columns).
- Row numbers are 1-based data rows: JSON array index + 1, JSON Lines line number, CSV record
  number after the header (blank lines count, so CSV row N is spreadsheet row N + 1). Errors
  with ``row=None`` are about the upload or the CSV header and reject no row.
- Blank optional values ("" or spaces) read as absent; blank and all-empty CSV lines are skipped.
- A repeated ``external_id`` rejects the later rows and names the first accepted one.
- Every string is cleaned before validation: NUL characters are removed (PostgreSQL text columns
  refuse them), so are bidi control characters (U+202E and the like could make stored text
  display in another order than it reads), and an unpaired surrogate (a JSON ``\\ud800`` escape,
  typically half an emoji cut by a client) becomes U+FFFD, as WHATWG does for invalid Unicode.
- A byte-order mark wins over any declared encoding (as in the WHATWG encoding standard).
- An undeclared CSV that is not UTF-8 as a whole is decoded line by line when some of its lines
  are UTF-8 and others are not (rows pasted together from two exports): UTF-8 lines as UTF-8,
  the others in the one legacy encoding detected for them; an upload-level note names them.
- A compressed body (any ``Content-Encoding`` but ``identity``) is refused with 415: inflating it
  would bypass the upload size limit (`check_content_encoding`).
- Whole-upload problems raise `UploadError` with the HTTP status to answer; nothing else is
  ever raised.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import charset_normalizer
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from models.text.normalize import strip_bidi_controls

MAX_TEXT_CHARS = 10_000
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_CHARS = 100
MAX_METADATA_VALUE_CHARS = 1_000

ACCEPTED_CONTENT_TYPES: dict[str, str] = {
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "text/csv": "csv",
}
ALLOWED_FIELDS = (
    "id",
    "external_id",
    "text",
    "channel",
    "service",
    "region",
    "received_at",
    "metadata",
)

MetadataKey = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_METADATA_KEY_CHARS)
]
MetadataValue = (
    Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS)]
    | int
    | Annotated[float, Field(allow_inf_nan=False)]  # stored as JSON, which has no Infinity
    | bool
    | None
)

# The csv module refuses fields over 128 KiB with a message about CSV syntax; the body size limit
# already bounds memory, and a long text should get the same "text is longer than" row error as
# in JSON. The limit is process-wide: raising it only ever accepts more.
csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))

_OPTIONAL_KEYS = frozenset({"id", "external_id", "channel", "service", "region", "received_at"})
_ID_KEYS = frozenset({"id", "external_id"})


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_str(value: str) -> str:
    """Drop NULs and bidi controls, replace unpaired surrogates (see the module docstring)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if value.isascii():
        return value
    return _SURROGATE.sub("\ufffd", strip_bidi_controls(value))


def _clean_value(value: Any) -> Any:
    return _clean_str(value) if type(value) is str else value


class ComplaintIn(BaseModel):
    """One complaint as a client posts it, before any analysis."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: str | None = Field(
        default=None, validation_alias=AliasChoices("external_id", "id"), max_length=200
    )
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    channel: str | None = Field(default=None, max_length=50)  # web, app, phone, email, counter...
    service: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    received_at: datetime | None = None
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, max_length=MAX_METADATA_KEYS
    )

    @model_validator(mode="before")
    @classmethod
    def _clean_input(cls, data: Any) -> Any:
        """Drop NULs, read blank optional values as absent and accept integer ids (CRM exports)."""
        if not isinstance(data, dict):
            return data
        cleaned: dict[Any, Any] = {}
        for key, value in data.items():
            if type(value) is str:
                value = _clean_str(value)
                if (not value or value.isspace()) and key in _OPTIONAL_KEYS:
                    continue
            elif key == "metadata":
                if value is None:
                    continue
                if type(value) is dict:
                    value = {_clean_value(k): _clean_value(v) for k, v in value.items()}
            elif type(value) is int and key in _ID_KEYS:
                value = str(value)
            cleaned[key] = value
        return cleaned

    @field_validator("received_at", mode="wrap")
    @classmethod
    def _read_received_at(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Refuse epoch numbers (seconds or milliseconds?) and read naive datetimes as UTC."""
        if type(value) is str:
            digits = value.strip().lstrip("+-")
            if digits[:1].isdigit() and digits.replace(".", "", 1).isdigit():
                raise ValueError(
                    "received_at is a number, not an ISO 8601 date or datetime; use e.g. "
                    "2024-05-01 or 2024-05-01T14:30:00+01:00"
                )
        elif isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("received_at must be an ISO 8601 date or datetime, not a number")
        parsed = handler(value)
        if isinstance(parsed, datetime) and parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed


@dataclass(frozen=True)
class RowError:
    """One problem found in an upload; `row` None means the upload or the CSV header."""

    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = "upload" if self.row is None else f"row {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


@dataclass
class ParsedUpload:
    """Accepted rows (with their row numbers) next to the errors of the rejected ones."""

    rows: list[tuple[int, ComplaintIn]]
    errors: list[RowError]
    received: int = 0  # data rows seen, accepted or not (blank lines excluded)
    format: str = ""  # json, jsonl or csv
    encoding: str = ""  # Python codec name the body was decoded with

    @property
    def rejected(self) -> int:
        return self.received - len(self.rows)


class UploadError(Exception):
    """The upload as a whole cannot be used; `status_code` is the HTTP status to answer."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def parse_upload(
    body: bytes,
    content_type: str | None,
    *,
    max_rows: int = 100_000,
    declared_encoding: str | None = None,
) -> ParsedUpload:
    """Decode, split and validate one upload; raises only `UploadError`."""
    fmt, charset = _parse_content_type(content_type)
    errors: list[RowError] = []
    text, encoding = _decode(body, fmt, charset, declared_encoding, errors)
    if "\x00" in text:
        text = text.replace("\x00", "")
    if fmt == "json":
        items = _json_items(text, max_rows, errors)
    elif fmt == "jsonl":
        items = _jsonl_items(text, max_rows, errors)
    else:
        items = _csv_items(text, max_rows, errors)
    received = len(items) + len({e.row for e in errors if e.row is not None})
    if received == 0:
        raise UploadError(422, "no complaints: the upload holds no data rows")
    rows = _validate(items, errors)
    errors.sort(key=lambda e: -1 if e.row is None else e.row)
    return ParsedUpload(rows=rows, errors=errors, received=received, format=fmt, encoding=encoding)


# --- content type and decoding -----------------------------------------------------------------

_DETECT_CANDIDATES = ["utf_8", "cp1256", "iso8859_6", "latin_1"]
_LEGACY_ENCODINGS = ("cp1256", "iso8859-6", "iso8859-1")
_SAMPLE_CHARS = 200_000
_FRIENDLY_NAMES = {
    "cp1256": "windows-1256",
    "iso8859-6": "iso-8859-6",
    "iso8859-1": "iso-8859-1",
    "utf-8": "utf-8",
}
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ARABIC = "\u0620-\u064a\u066e-\u06d3"
_LATIN = "A-Za-z\u00c0-\u024f"
_ARABIC_LETTER = re.compile(f"[{_ARABIC}]")
_MOJIBAKE = re.compile(
    f"[{_LATIN}][{_ARABIC}]|[{_ARABIC}][{_LATIN}]"  # words that mix Arabic and Latin letters
    f"|(?<![{_ARABIC}])[{_ARABIC}](?![{_ARABIC}])"  # lone Arabic letters (French À in cp1256)
    "|[\u00c0-\u00ff]{3,}"  # runs of accented letters (Arabic read as latin-1)
    "|[\u0080-\u009f]"  # C1 control characters
)


def _shorten(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _parse_content_type(content_type: str | None) -> tuple[str, str | None]:
    accepted = ", ".join(ACCEPTED_CONTENT_TYPES)
    if not content_type or not content_type.strip():
        raise UploadError(415, f"missing Content-Type; send one of: {accepted}")
    media, _, params = content_type.partition(";")
    fmt = ACCEPTED_CONTENT_TYPES.get(media.strip().lower())
    if fmt is None:
        raise UploadError(
            415, f"unsupported Content-Type {_shorten(media.strip())!r}; send one of: {accepted}"
        )
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').strip() or None
    return fmt, charset


def _lookup_codec(name: str, source: str, status: int) -> str:
    try:
        info = codecs.lookup(name.strip())
    except (LookupError, ValueError):
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise UploadError(status, f"unknown text encoding {_shorten(name)!r} in {source}")
    return info.name


def check_content_encoding(content_encoding: str | None) -> None:
    """Refuse a compressed body: a few kilobytes of gzip can inflate past any size limit.

    Clients compress on the wire with TLS or not at all; the body limit is checked on the bytes
    received, which only an uncompressed body makes meaningful.
    """
    if content_encoding is None:
        return
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    if any(c != "identity" for c in codings):
        raise UploadError(
            415,
            f"unsupported Content-Encoding {_shorten(content_encoding.strip())!r}: send the body "
            "uncompressed (only 'identity' is accepted)",
        )


def _decode(
    body: bytes, fmt: str, charset: str | None, declared: str | None, notes: list[RowError]
) -> tuple[str, str]:
    """The body as text and the codec used; a mixed-encoding CSV adds an upload-level note."""
    if declared is not None and declared.strip():
        encoding: str | None = _lookup_codec(declared, "the encoding parameter", 400)
    elif charset is not None:
        encoding = _lookup_codec(charset, "the Content-Type charset", 415)
    else:
        encoding = None
    for bom, bom_encoding in _BOMS:
        if body.startswith(bom):
            return _strict_decode(body, len(bom), bom_encoding), bom_encoding
    if encoding is None:
        try:
            return body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            if fmt != "csv":  # JSON is UTF-8 unless declared otherwise (RFC 8259)
                _raise_undecodable(body, exc.start, "utf-8")
        mixed = _decode_mixed_lines(body)
        if mixed is not None:
            text, legacy, lines = mixed
            shown = ", ".join(map(str, lines[:20])) + (", ..." if len(lines) > 20 else "")
            notes.append(
                RowError(
                    None,
                    None,
                    f"the CSV mixes encodings: {len(lines)} line(s) are not UTF-8 and were read "
                    f"as {_FRIENDLY_NAMES.get(legacy, legacy)} (file lines {shown}); check them",
                )
            )
            return text, f"utf-8+{legacy}"
        return _detect_legacy(body)
    text = _strict_decode(body, 0, encoding)
    return (text[1:] if text.startswith("\ufeff") else text), encoding


def _strict_decode(body: bytes, start: int, encoding: str) -> str:
    try:
        return body[start:].decode(encoding)
    except UnicodeDecodeError as exc:
        _raise_undecodable(body, start + exc.start, encoding)
    except Exception as exc:  # a codec may raise anything on hostile bytes
        raise UploadError(400, f"cannot decode the body as {encoding}: {exc}") from None


def _raise_undecodable(body: bytes, offset: int, encoding: str) -> NoReturn:
    line = body.count(b"\n", 0, offset) + 1
    try:
        body.decode("utf-8")
        guess = "utf-8"
    except UnicodeDecodeError:
        guess = _detect_legacy(body)[1]
    raise UploadError(
        400,
        f"the body is not valid {_FRIENDLY_NAMES.get(encoding, encoding)}: undecodable byte "
        f"{body[offset : offset + 1]!r} at byte offset {offset} (line {line}); declare the real "
        f"encoding with ?encoding=<name>, e.g. ?encoding={_FRIENDLY_NAMES.get(guess, guess)}",
    )


def _decode_mixed_lines(body: bytes) -> tuple[str, str, list[int]] | None:
    """Decode UTF-8 lines as UTF-8 and the rest in one detected legacy encoding.

    None unless some lines hold non-ASCII UTF-8 and others are not UTF-8. Legacy codecs map one
    byte to one character, so decoding line by line equals decoding the legacy lines together.
    A legacy line that happens to be valid UTF-8 would be misread; real Arabic or accented text
    in cp1256/latin-1 almost never is (consecutive letters are not valid UTF-8 sequences).
    """
    lines = body.splitlines(keepends=True)
    utf8_lines: dict[int, str] = {}
    legacy: list[int] = []
    for index, line in enumerate(lines):
        if line.isascii():
            continue
        try:
            utf8_lines[index] = line.decode("utf-8")
        except UnicodeDecodeError:
            legacy.append(index)
    if not utf8_lines or not legacy:
        return None
    _, name = _detect_legacy(b"".join(lines[i] for i in legacy))
    text = "".join(
        utf8_lines[i] if i in utf8_lines else line.decode(name) for i, line in enumerate(lines)
    )
    return text, name, [i + 1 for i in legacy]


def _detect_legacy(body: bytes) -> tuple[str, str]:
    """Decode a non-UTF-8 body as cp1256, iso-8859-6 or latin-1; returns (text, codec name).

    charset-normalizer ranks the candidates; mojibake (see `_MOJIBAKE`) overrules its ranking,
    and on a tie cp1256 wins when it yields Arabic letters, since a cp1256 file also decodes,
    as mojibake, in latin-1. Short Arabic texts can be valid in both Arabic encodings: cp1256,
    by far the more common one, wins those; `?encoding=iso-8859-6` settles them.
    """
    try:
        matches = charset_normalizer.from_bytes(body, cp_isolation=_DETECT_CANDIDATES)
        ranked = [codecs.lookup(match.encoding).name for match in matches]
    except Exception:  # a detector failure must not fail the upload: the scores below decide
        ranked = []
    best: tuple[tuple[int, int, int], str, str] | None = None
    for rank, name in enumerate(dict.fromkeys([*ranked, *_LEGACY_ENCODINGS])):
        if name not in _LEGACY_ENCODINGS:
            continue
        try:
            text = body.decode(name)
        except UnicodeDecodeError:
            continue
        sample = text[:_SAMPLE_CHARS]
        arabic = name == "cp1256" and _ARABIC_LETTER.search(sample) is not None
        key = (len(_MOJIBAKE.findall(sample)), 0 if arabic else 1, rank)
        if best is None or key < best[0]:
            best = (key, name, text)
    if best is None:  # unreachable: latin-1 decodes any bytes
        return body.decode("latin-1"), "iso8859-1"
    return best[2], best[1]


# --- formats -----------------------------------------------------------------------------------


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _too_many(max_rows: int) -> NoReturn:
    raise UploadError(
        413, f"too many complaints: the limit is {max_rows} per upload; split the upload"
    )


def _json_items(text: str, max_rows: int, errors: list[RowError]) -> list[tuple[int, Any]]:
    if not text.strip():
        raise UploadError(422, "no complaints: the body is empty")
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            hint = "; one object per line is JSON Lines: send it as application/x-ndjson"
        raise UploadError(
            400, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}"
        ) from None
    except RecursionError:
        raise UploadError(400, "invalid JSON: nested too deeply for a list of complaints") from None
    except ValueError as exc:
        raise UploadError(400, f"invalid JSON: {str(exc).split(';')[0]}") from None
    shape = 'a JSON array of complaints or an object {"complaints": [...]}'
    if isinstance(document, dict):
        if "complaints" not in document:
            hint = "; to send one complaint, wrap it in an array" if "text" in document else ""
            raise UploadError(422, f"expected {shape}{hint}")
        for key in document:
            if key != "complaints":
                errors.append(
                    RowError(
                        None,
                        _shorten(key),
                        f"unknown top-level key {_shorten(key)!r} "
                        "ignored; only 'complaints' is read",
                    )
                )
        document = document["complaints"]
        if not isinstance(document, list):
            raise UploadError(422, f"'complaints' must be an array, got {_json_kind(document)}")
    elif not isinstance(document, list):
        raise UploadError(422, f"expected {shape}, got {_json_kind(document)}")
    if not document:
        raise UploadError(422, "no complaints: the array is empty")
    if len(document) > max_rows:
        _too_many(max_rows)
    return list(enumerate(document, start=1))


def _jsonl_items(text: str, max_rows: int, errors: list[RowError]) -> list[tuple[int, Any]]:
    items: list[tuple[int, Any]] = []
    count = 0
    loads = json.loads
    for number, line in enumerate(text.split("\n"), start=1):
        if not line or line.isspace():
            continue
        count += 1
        if count > max_rows:
            _too_many(max_rows)
        try:
            items.append((number, loads(line, parse_constant=_refuse_constant)))
        except json.JSONDecodeError as exc:
            hint = ""
            if count == 1 and line.lstrip().startswith("["):
                hint = (
                    "; JSON Lines needs one complaint object per line: send a JSON array as "
                    "application/json"
                )
            errors.append(
                RowError(number, None, f"invalid JSON at column {exc.colno}: {exc.msg}{hint}")
            )
        except RecursionError:
            errors.append(RowError(number, None, "invalid JSON: nested too deeply"))
        except ValueError as exc:
            errors.append(RowError(number, None, f"invalid JSON: {str(exc).split(';')[0]}"))
    return items


_CSV_COLUMNS = {
    "id": "external_id",
    "external_id": "external_id",
    "text": "text",
    "channel": "channel",
    "service": "service",
    "region": "region",
    "received_at": "received_at",
}
_META_PREFIXES = ("metadata.", "meta_")
_DELIMITERS = (",", ";", "\t")


def _column_target(name: str) -> str | None:
    """`text`, `external_id`... or `metadata.<key>`; None for an unknown column."""
    lowered = name.strip().lower()
    if lowered in _CSV_COLUMNS:
        return _CSV_COLUMNS[lowered]
    for prefix in _META_PREFIXES:
        if lowered.startswith(prefix):
            return "metadata." + name.strip()[len(prefix) :].strip()
    return None


def _sniff_delimiter(header_line: str) -> str:
    """Pick the delimiter under which the header names the most known columns."""
    best, best_score = ",", (-1, -1)
    for delimiter in _DELIMITERS:
        try:
            names = next(csv.reader([header_line], delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        score = (sum(_column_target(n) is not None for n in names), len(names))
        if score > best_score:
            best, best_score = delimiter, score
    return best


@dataclass
class _CsvPlan:
    text_index: int
    fields: list[tuple[int, str]] = field(default_factory=list)
    metadata: list[tuple[int, str]] = field(default_factory=list)


def _plan_columns(header: list[str], errors: list[RowError]) -> _CsvPlan:
    allowed = ", ".join(_CSV_COLUMNS)
    seen: dict[str, str] = {}
    plan = _CsvPlan(text_index=-1)
    for index, raw in enumerate(header):
        name = raw.strip()
        target = _column_target(name)
        if not name:
            errors.append(
                RowError(None, None, f"column {index + 1} has no name; its values are ignored")
            )
            continue
        if target is None:
            errors.append(
                RowError(
                    None,
                    name,
                    f"unknown column {_shorten(name)!r}; allowed: "
                    f"{allowed}; use the metadata.<key> prefix for "
                    "free metadata",
                )
            )
            continue
        if target == "metadata.":
            errors.append(
                RowError(
                    None,
                    name,
                    f"column {_shorten(name)!r} names no metadata key; its values are ignored",
                )
            )
            continue
        if target in seen:
            errors.append(
                RowError(
                    None,
                    name,
                    f"duplicate column {_shorten(name)!r} (same as "
                    f"{_shorten(seen[target])!r}); only the first "
                    "one is read",
                )
            )
            continue
        seen[target] = name
        if target == "text":
            plan.text_index = index
        elif target.startswith("metadata."):
            plan.metadata.append((index, target[len("metadata.") :]))
        else:
            plan.fields.append((index, target))
    if plan.text_index < 0:
        found = ", ".join(repr(_shorten(n)) for n in header[:20])
        raise UploadError(
            422,
            f"the CSV header has no 'text' column (found: {found}); the first "
            "line must name the columns, e.g. id,text,channel",
        )
    return plan


def _csv_items(text: str, max_rows: int, errors: list[RowError]) -> list[tuple[int, Any]]:
    lines = io.StringIO(text, newline="").readlines()
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        raise UploadError(422, "no complaints: the CSV is empty")
    delimiter = _sniff_delimiter(lines[start])
    reader = csv.reader(itertools.islice(lines, start, None), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise UploadError(422, f"cannot read the CSV header (line {start + 1}): {exc}") from None
    plan = _plan_columns(header, errors)
    width = len(header)
    items: list[tuple[int, Any]] = []
    row = count = 0
    position = start + reader.line_num  # index in `lines` of the next unread line
    while position < len(lines):
        base, consumed, resync = position, 0, False
        reader = csv.reader(itertools.islice(lines, base, None), delimiter=delimiter, strict=True)
        try:
            for record in reader:
                first, consumed = base + consumed, reader.line_num
                row += 1
                if not "".join(record).strip():
                    continue
                count += 1
                if count > max_rows:
                    _too_many(max_rows)
                if len(record) == width or (len(record) > width and not "".join(record[width:])):
                    items.append((row, _csv_record(record, plan)))
                    continue
                last = base + consumed
                where = f"line {first + 1}"
                if last - first > 1:
                    where = f"lines {first + 1}-{last}; is a quote left open?"
                    resync = True
                errors.append(
                    RowError(
                        row,
                        None,
                        f"expected {width} fields as in the header, found {len(record)} ({where})",
                    )
                )
                if resync:
                    position = first + 1
                    break
        except csv.Error as exc:
            first = base + consumed
            row += 1
            count += 1
            if count > max_rows:
                _too_many(max_rows)
            errors.append(
                RowError(
                    row,
                    None,
                    f"malformed CSV at line {first + 1}: {exc}; quote "
                    "fields that hold the delimiter, a quote or a line "
                    "break, and double the quotes inside them",
                )
            )
            position, resync = first + 1, True
        if not resync:
            break
    return items


def _csv_record(record: list[str], plan: _CsvPlan) -> dict[str, Any]:
    values: dict[str, Any] = {"text": record[plan.text_index]}
    for index, name in plan.fields:
        if record[index]:
            values[name] = record[index]
    if plan.metadata:
        metadata = {}
        for index, key in plan.metadata:
            if record[index].strip():
                metadata[key] = record[index]
        if metadata:
            values["metadata"] = metadata
    return values


# --- validation --------------------------------------------------------------------------------


def _validate(
    items: Iterable[tuple[int, Any]], errors: list[RowError]
) -> list[tuple[int, ComplaintIn]]:
    rows: list[tuple[int, ComplaintIn]] = []
    first_row_of: dict[str, int] = {}
    validate = ComplaintIn.model_validate
    for row, item in items:
        if not isinstance(item, dict):
            errors.append(
                RowError(
                    row, None, f"expected a JSON object for each complaint, got {_json_kind(item)}"
                )
            )
            continue
        try:
            complaint = validate(item)
        except ValidationError as exc:
            errors.extend(_row_errors(row, exc))
            continue
        external_id = complaint.external_id
        if external_id is not None:
            first = first_row_of.setdefault(external_id, row)
            if first != row:
                errors.append(
                    RowError(
                        row,
                        "external_id",
                        f"duplicate external_id "
                        f"{_shorten(external_id)!r}: already "
                        f"used by row {first}",
                    )
                )
                continue
        rows.append((row, complaint))
    return rows


def _row_errors(row: int, exc: ValidationError) -> list[RowError]:
    """One error per field: pydantic reports each union branch separately."""
    found: dict[str | None, RowError] = {}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if not loc:
            name = None
        elif loc[0] == "metadata" and len(loc) >= 2:
            name = f"metadata.{_shorten(str(loc[1]))}"
        else:
            name = _shorten(str(loc[0]))
        if name not in found:
            found[name] = RowError(row, name, _message(error, name))
    return list(found.values())


def _message(error: Any, name: str | None) -> str:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    loc = error["loc"]
    label = name or "row"
    if kind == "extra_forbidden":
        if name in ("id", "external_id"):
            return "send the identifier as either 'id' or 'external_id', not both"
        return (
            f"unknown field {_shorten(str(name))!r}; allowed: {', '.join(ALLOWED_FIELDS)}; "
            "put free fields under 'metadata'"
        )
    if kind == "missing":
        return f"{label} is required"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if name is not None and name.startswith("metadata."):
        if loc[-1] == "[key]":
            return f"metadata keys must be 1 to {MAX_METADATA_KEY_CHARS} characters long"
        if kind == "string_too_long":
            return f"{label} is longer than {ctx['max_length']} characters ({len(value.strip())})"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{label} must be a finite number"
        return f"metadata values must be a string, number, boolean or null, got {_json_kind(value)}"
    if name == "metadata":
        if kind == "too_long":
            size = len(value) if isinstance(value, dict) else "?"
            return f"metadata has {size} keys; at most {MAX_METADATA_KEYS} are allowed"
        return f"metadata must be an object of key: value pairs, got {_json_kind(value)}"
    if kind == "string_too_short":
        return f"{label} is empty"
    if kind == "string_too_long":
        size = len(value.strip()) if isinstance(value, str) else "?"
        return f"{label} is longer than {ctx['max_length']} characters ({size})"
    if kind == "string_type":
        return f"{label} must be a string, got {_json_kind(value)}"
    if name == "received_at":
        # Never quote the value: a shifted CSV column puts the complaint's text here.
        shown = (
            f"a string of {len(value)} characters" if isinstance(value, str) else _json_kind(value)
        )
        reason = f" ({ctx['error']})" if "error" in ctx else ""
        return (
            f"received_at ({shown}) is not an ISO 8601 date or datetime{reason}; use e.g. "
            "2024-05-01 or 2024-05-01T14:30:00+01:00"
        )
    return f"{label}: {error['msg']}"
