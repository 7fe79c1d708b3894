"""Behaviour of the batch upload parser, exercised only through `parse_upload`."""

from __future__ import annotations

import codecs
import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.batches.parsing import ParsedUpload, RowError, UploadError, parse_upload

JSON = "application/json"
JSONL = "application/x-ndjson"
CSV = "text/csv"
JSONL_TYPES = ["application/x-ndjson", "application/jsonl", "application/x-jsonlines"]

ARABIC_COMPLAINTS = [
    "الإدارة لم ترد على طلبي منذ ثلاثة أشهر، وهذا غير مقبول",
    "بزاف ديال الانتظار فالمقاطعة، الموظف ما بغاش يجاوبني",
    "شكرا على الخدمة السريعة في مكتب الحالة المدنية",
    "انقطاع الماء في الحي منذ يومين ولا أحد يجيب على الهاتف",
]
FRENCH_COMPLAINTS = [
    "ÉTAT CIVIL fermé depuis lundi, personne ne répond",
    "À quand la réponse ? Ça fait trois mois que j'attends",
    "Très bon accueil à la préfecture de Fès",
]


def json_body(rows: object) -> bytes:
    return json.dumps(rows, ensure_ascii=False).encode()


def jsonl_body(rows: list[dict[str, object]]) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()


def csv_text(header: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def upload_error(body: bytes, content_type: str | None, **kwargs: object) -> UploadError:
    with pytest.raises(UploadError) as info:
        parse_upload(body, content_type, **kwargs)  # type: ignore[arg-type]
    return info.value


def texts(parsed: ParsedUpload) -> list[str]:
    return [complaint.text for _, complaint in parsed.rows]


def errors_at(parsed: ParsedUpload, row: int | None) -> list[RowError]:
    return [e for e in parsed.errors if e.row == row]


def only_error(parsed: ParsedUpload, row: int | None) -> RowError:
    found = errors_at(parsed, row)
    assert len(found) == 1, parsed.errors
    return found[0]


@pytest.fixture
def full_row() -> dict[str, object]:
    return {
        "id": 42,
        "text": "  Le guichet était fermé  ",
        "channel": "counter",
        "service": "etat-civil",
        "region": "Fès-Meknès",
        "received_at": "2024-05-01T10:30:00",
        "metadata": {"agent": "a1", "score": 3, "ratio": 0.5, "urgent": True, "note": None},
    }


# --- formats ------------------------------------------------------------------------------------


def test_json_array_is_validated_and_normalised(full_row: dict[str, object]) -> None:
    parsed = parse_upload(json_body([full_row]), JSON)

    assert parsed.errors == []
    assert parsed.format == "json"
    ((row, complaint),) = parsed.rows
    assert row == 1
    assert complaint.external_id == "42"
    assert complaint.text == "Le guichet était fermé"
    assert (complaint.channel, complaint.service, complaint.region) == (
        "counter",
        "etat-civil",
        "Fès-Meknès",
    )
    assert complaint.received_at == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    assert complaint.metadata == {
        "agent": "a1",
        "score": 3,
        "ratio": 0.5,
        "urgent": True,
        "note": None,
    }
    assert type(complaint.metadata["score"]) is int
    assert type(complaint.metadata["urgent"]) is bool


def test_json_object_with_complaints_key_reports_other_top_level_keys() -> None:
    body = json_body({"complaints": [{"text": "a"}, {"text": "b"}], "source": "crm"})

    parsed = parse_upload(body, JSON)

    assert texts(parsed) == ["a", "b"]
    error = only_error(parsed, None)
    assert error.field == "source"
    assert "only 'complaints' is read" in error.message


@pytest.mark.parametrize("content_type", JSONL_TYPES)
def test_json_lines_skip_blank_lines_and_number_rows_by_line(content_type: str) -> None:
    body = b'{"id": "a", "text": "first"}\r\n\r\n   \n{"id": "b", "text": "second"}\n'

    parsed = parse_upload(body, content_type)

    assert parsed.format == "jsonl"
    assert [(row, c.external_id, c.text) for row, c in parsed.rows] == [
        (1, "a", "first"),
        (4, "b", "second"),
    ]
    assert parsed.received == 2


def test_json_lines_bad_line_is_a_row_error_and_other_lines_are_kept() -> None:
    body = b'{"text": "ok"}\n{"text": "broken"\n[1, 2]\n{"text": "also ok"}\n'

    parsed = parse_upload(body, JSONL)

    assert [row for row, _ in parsed.rows] == [1, 4]
    assert "invalid JSON at column 18" in only_error(parsed, 2).message
    assert "expected a JSON object" in only_error(parsed, 3).message
    assert parsed.rejected == 2


def test_json_lines_hint_when_a_json_array_is_sent() -> None:
    parsed = parse_upload(b'[\n  {"text": "a"}\n]\n', JSONL)

    assert "send a JSON array as application/json" in only_error(parsed, 1).message


def test_csv_reads_all_columns_and_both_metadata_prefixes() -> None:
    body = csv_text(
        ["id", "text", "channel", "service", "region", "received_at", "metadata.city", "meta_age"],
        [
            [
                "c1",
                "Le guichet, encore fermé",
                "web",
                "cnss",
                "Oriental",
                "2024-05-01",
                "Oujda",
                "40",
            ]
        ],
    ).encode()

    parsed = parse_upload(body, CSV)

    assert parsed.errors == []
    ((row, complaint),) = parsed.rows
    assert row == 1
    assert complaint.external_id == "c1"
    assert complaint.text == "Le guichet, encore fermé"
    assert (complaint.channel, complaint.service, complaint.region) == ("web", "cnss", "Oriental")
    assert complaint.received_at == datetime(2024, 5, 1, tzinfo=UTC)
    assert complaint.metadata == {"city": "Oujda", "age": "40"}


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiter_is_sniffed(delimiter: str) -> None:
    rows = [["1", "texte avec , et ; dedans", "app"], ["2", "deuxième", "web"]]
    body = csv_text(["external_id", "text", "channel"], rows, delimiter).encode()

    parsed = parse_upload(body, CSV)

    assert parsed.errors == []
    assert texts(parsed) == ["texte avec , et ; dedans", "deuxième"]
    assert [c.channel for _, c in parsed.rows] == ["app", "web"]


def test_csv_quoted_fields_may_hold_quotes_and_line_breaks() -> None:
    body = b'id,text\n1,"il a dit ""non""\nsur deux lignes"\n2,suivant\n'

    parsed = parse_upload(body, CSV)

    assert parsed.errors == []
    assert texts(parsed) == ['il a dit "non"\nsur deux lignes', "suivant"]
    assert [row for row, _ in parsed.rows] == [1, 2]


def test_csv_header_names_ignore_case_and_spaces() -> None:
    parsed = parse_upload(b" ID ; Text ;CHANNEL\n7;bonjour;phone\n", CSV)

    assert parsed.errors == []
    ((_, complaint),) = parsed.rows
    assert (complaint.external_id, complaint.text, complaint.channel) == ("7", "bonjour", "phone")


def test_csv_unknown_column_is_a_header_error_and_rows_are_kept() -> None:
    parsed = parse_upload(b"id,text,priority\n1,un,high\n2,deux,low\n", CSV)

    assert texts(parsed) == ["un", "deux"]
    assert all(c.metadata == {} for _, c in parsed.rows)
    error = only_error(parsed, None)
    assert error.field == "priority"
    assert "unknown column 'priority'; allowed: id, external_id, text" in error.message
    assert "metadata.<key>" in error.message


def test_csv_duplicate_column_keeps_the_first() -> None:
    parsed = parse_upload(b"id,text,external_id\n1,un,99\n", CSV)

    assert [c.external_id for _, c in parsed.rows] == ["1"]
    assert "duplicate column 'external_id'" in only_error(parsed, None).message


def test_csv_without_text_column_is_refused() -> None:
    error = upload_error(b"id,body\n1,hello\n", CSV)

    assert error.status_code == 422
    assert "no 'text' column" in error.message


def test_csv_wrong_field_count_rejects_only_that_row() -> None:
    parsed = parse_upload(
        b"id,text,channel\n1,un,web\n2,deux\n3,trois,app,extra\n4,quatre,web\n", CSV
    )

    assert [row for row, _ in parsed.rows] == [1, 4]
    assert "expected 3 fields as in the header, found 2 (line 3)" in only_error(parsed, 2).message
    assert "found 4" in only_error(parsed, 3).message


def test_csv_trailing_empty_fields_are_tolerated() -> None:
    parsed = parse_upload(b"id;text\n1;un;;\n", CSV)

    assert parsed.errors == []
    assert texts(parsed) == ["un"]


def test_csv_unterminated_quote_at_end_is_a_row_error() -> None:
    parsed = parse_upload(b'id,text\n1,ok\n2,"never closed\n3,swallowed?\n', CSV)

    assert texts(parsed)[0] == "ok"
    error = errors_at(parsed, 2)[0]
    assert "line 3" in error.message
    assert "quote" in error.message
    # the parser resynchronises on the next line, so row 3 is not lost
    assert [(row, c.text) for row, c in parsed.rows] == [(1, "ok"), (3, "swallowed?")]


def test_csv_unterminated_quote_in_the_middle_keeps_later_rows() -> None:
    body = b'id,text\n1,"open\n2,ok\n3,"quoted"\n4,fine\n'

    parsed = parse_upload(body, CSV)

    assert only_error(parsed, 1).field is None
    assert [(row, c.text) for row, c in parsed.rows] == [(2, "ok"), (3, "quoted"), (4, "fine")]


def test_csv_blank_and_empty_lines_are_skipped_but_counted() -> None:
    parsed = parse_upload(b"id,text\n\n1,un\n,\n \n2,deux\n", CSV)

    assert parsed.errors == []
    assert [(row, c.text) for row, c in parsed.rows] == [(2, "un"), (5, "deux")]
    assert parsed.received == 2


def test_blank_optional_values_read_as_absent() -> None:
    csv_parsed = parse_upload(b"id,text,channel,received_at,meta_x\n ,un,  ,,\n", CSV)
    json_parsed = parse_upload(json_body([{"id": "", "text": "un", "region": "  "}]), JSON)

    for parsed in (csv_parsed, json_parsed):
        assert parsed.errors == []
        ((_, complaint),) = parsed.rows
        assert complaint.external_id is None
        assert complaint.channel is None
        assert complaint.region is None
        assert complaint.received_at is None
        assert complaint.metadata == {}


# --- encodings ----------------------------------------------------------------------------------


def arabic_csv() -> str:
    return csv_text(
        ["id", "text", "region"], [[str(i), t, "الرباط"] for i, t in enumerate(ARABIC_COMPLAINTS)]
    )


def test_utf8_with_bom_csv_keeps_the_first_column_name() -> None:
    parsed = parse_upload(codecs.BOM_UTF8 + arabic_csv().encode(), CSV)

    assert parsed.errors == []
    assert parsed.rows[0][1].external_id == "0"
    assert texts(parsed) == ARABIC_COMPLAINTS


def test_utf8_with_bom_json() -> None:
    parsed = parse_upload(codecs.BOM_UTF8 + json_body([{"text": "سلام"}]), JSON)

    assert texts(parsed) == ["سلام"]


def test_utf16_with_bom_csv_as_excel_unicode_text() -> None:
    text = csv_text(["id", "text"], [["1", ARABIC_COMPLAINTS[0]]], "\t")

    parsed = parse_upload(codecs.BOM_UTF16_LE + text.encode("utf-16-le"), CSV)

    assert parsed.encoding == "utf-16-le"
    assert texts(parsed) == [ARABIC_COMPLAINTS[0]]


@pytest.mark.parametrize(("codec", "expected"), [("cp1256", "cp1256"), ("iso8859_6", "iso8859-6")])
def test_arabic_legacy_encodings_are_detected(codec: str, expected: str) -> None:
    body = arabic_csv().encode(codec)
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")

    parsed = parse_upload(body, CSV)

    assert parsed.encoding == expected
    assert texts(parsed) == ARABIC_COMPLAINTS
    assert {c.region for _, c in parsed.rows} == {"الرباط"}


@pytest.mark.parametrize("text", [*ARABIC_COMPLAINTS, "شكرا", "واش كاين شي حل؟", "في", "لا"])
def test_single_cp1256_row_is_not_read_as_latin1_mojibake(text: str) -> None:
    body = f"text\n{text}\n".encode("cp1256")
    assert body.decode("latin-1")  # also "valid" latin-1, hence the preference rule

    parsed = parse_upload(body, CSV)

    assert texts(parsed) == [text]


@pytest.mark.parametrize(
    "text", ["يومين ne lundi guichet", "le dossier CIN في attente", "rendez-vous لا"]
)
def test_sparse_arabic_in_cp1256_is_preferred_to_latin1(text: str) -> None:
    # charset-normalizer alone ranks latin-1 first for the first two of these
    body = f"id,received_at,text\n0,2024-05-01,{text}\n".encode("cp1256")

    parsed = parse_upload(body, CSV)

    assert parsed.encoding == "cp1256"
    assert texts(parsed) == [text]


@pytest.mark.parametrize("text", ["À quand la réponse ?", "Ça fait trois mois", "À bientôt"])
def test_single_latin1_row_is_not_read_as_cp1256(text: str) -> None:
    body = f"text\n{text}\n".encode("latin-1")
    assert body.decode("cp1256") != text  # an Arabic letter would replace the capital

    parsed = parse_upload(body, CSV)

    assert texts(parsed) == [text]


@pytest.mark.parametrize("codec", ["latin-1", "cp1252"])
def test_french_legacy_csv_is_not_read_as_arabic(codec: str) -> None:
    body = csv_text(["text"], [[t] for t in FRENCH_COMPLAINTS]).encode(codec)

    parsed = parse_upload(body, CSV)

    assert texts(parsed) == FRENCH_COMPLAINTS


def test_windows_punctuation_is_not_read_as_control_characters() -> None:
    text = "l’attente est trop longue… c’est inadmissible"

    parsed = parse_upload(f"text\n{text}\n".encode("cp1252"), CSV)

    assert texts(parsed) == [text]


def test_charset_parameter_is_honoured() -> None:
    # "شكرا" in iso-8859-6 is also valid cp1256 (another word): only the declaration settles it
    body = "text\nشكرا\n".encode("iso8859_6")

    parsed = parse_upload(body, 'text/csv; charset="ISO-8859-6"')

    assert parsed.encoding == "iso8859-6"
    assert texts(parsed) == ["شكرا"]


def test_charset_parameter_is_honoured_for_json() -> None:
    body = json.dumps([{"text": "شكرا"}], ensure_ascii=False).encode("cp1256")

    parsed = parse_upload(body, "application/json; charset=windows-1256")

    assert texts(parsed) == ["شكرا"]


def test_declared_encoding_overrides_the_charset_parameter() -> None:
    body = "text\nشكرا\n".encode("iso8859_6")

    parsed = parse_upload(body, "text/csv; charset=utf-8", declared_encoding="iso-8859-6")

    assert texts(parsed) == ["شكرا"]


def test_undecodable_json_names_the_byte_offset_and_suggests_an_encoding() -> None:
    prefix = b'[{"text": "ok"},\n {"text": "'
    body = prefix + "شكرا".encode("cp1256") + b'"}]'

    error = upload_error(body, JSON)

    assert error.status_code == 400
    assert f"byte offset {len(prefix)} (line 2)" in error.message
    assert "?encoding=windows-1256" in error.message


def test_undecodable_csv_under_a_declared_encoding() -> None:
    body = arabic_csv().encode("cp1256")

    error = upload_error(body, CSV, declared_encoding="utf-8")

    assert error.status_code == 400
    assert "byte offset" in error.message
    assert "?encoding=windows-1256" in error.message


@pytest.mark.parametrize(
    ("content_type", "declared", "status"),
    [
        ("text/csv; charset=klingon", None, 415),
        (CSV, "klingon", 400),
        (CSV, "rot13", 400),
        (JSON, "base64", 400),
    ],
)
def test_unknown_or_non_text_encodings_are_refused(
    content_type: str, declared: str | None, status: int
) -> None:
    error = upload_error(b"text\nbonjour\n", content_type, declared_encoding=declared)

    assert error.status_code == status
    assert "unknown text encoding" in error.message


# --- whole-upload errors ------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "multipart/form-data"])
def test_wrong_content_type_is_415_and_lists_accepted_types(content_type: str | None) -> None:
    error = upload_error(b'[{"text": "a"}]', content_type)

    assert error.status_code == 415
    for accepted in ["application/json", "application/x-ndjson", "text/csv"]:
        assert accepted in error.message


def test_content_type_matching_ignores_case_and_parameters() -> None:
    parsed = parse_upload(b'[{"text": "a"}]', "Application/JSON ; charset=UTF-8")

    assert texts(parsed) == ["a"]


def test_invalid_json_reports_line_and_column() -> None:
    error = upload_error(b'[\n  {"text": "a"},\n  {"text": }\n]', JSON)

    assert error.status_code == 400
    assert "line 3, column 12" in error.message


def test_json_lines_sent_as_json_get_a_hint() -> None:
    error = upload_error(b'{"text": "a"}\n{"text": "b"}\n', JSON)

    assert "application/x-ndjson" in error.message


@pytest.mark.parametrize(
    "body", [b'{"text": "one complaint"}', b'{"items": []}', b'"text"', b"42", b"null"]
)
def test_json_of_the_wrong_shape_is_422(body: bytes) -> None:
    error = upload_error(body, JSON)

    assert error.status_code == 422
    assert "array" in error.message


def test_nan_is_not_json() -> None:
    assert upload_error(b'[{"text": "a", "metadata": {"x": NaN}}]', JSON).status_code == 400


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", JSON),
        (b"  \n ", JSON),
        (b"[]", JSON),
        (b'{"complaints": []}', JSON),
        (b"", JSONL),
        (b"\n\n  \r\n", JSONL),
        (b"", CSV),
        (b"id,text\n", CSV),
        (b"id,text\n\n,\n", CSV),
        (codecs.BOM_UTF8, CSV),
    ],
)
def test_empty_upload_is_422(body: bytes, content_type: str) -> None:
    error = upload_error(body, content_type)

    assert error.status_code == 422
    assert "no complaints" in error.message


@pytest.mark.parametrize(
    ("body", "content_type", "accepted"),
    [
        (json_body([{"text": str(i)} for i in range(4)]), JSON, 4),
        (jsonl_body([{"text": str(i)} for i in range(4)]), JSONL, 4),
        (b"text\n1\n2\n3\n4\n", CSV, 4),
        (b'text\n1\n2\n3\n"4\n', CSV, 3),  # a malformed row still counts
    ],
)
def test_more_than_max_rows_is_413_naming_the_limit(
    body: bytes, content_type: str, accepted: int
) -> None:
    assert len(parse_upload(body, content_type, max_rows=4).rows) == accepted

    error = upload_error(body, content_type, max_rows=3)

    assert error.status_code == 413
    assert "limit is 3" in error.message


def test_huge_json_integer_is_a_clean_error() -> None:
    error = upload_error(b'[{"text": "x", "metadata": {"n": ' + b"9" * 5000 + b"}}]", JSON)

    assert error.status_code == 400
    assert "set_int_max_str_digits" not in error.message


def test_deeply_nested_json_is_refused_cleanly() -> None:
    error = upload_error(b"[" * 100_000 + b"]" * 100_000, JSON)

    assert error.status_code == 400
    assert "nested too deeply" in error.message


def test_deeply_nested_json_line_is_a_row_error() -> None:
    body = b'{"text": "ok"}\n{"text": "x", "metadata": ' + b"[" * 100_000 + b"\n"

    parsed = parse_upload(body, JSONL)

    assert texts(parsed) == ["ok"]
    assert "nested too deeply" in only_error(parsed, 2).message


def test_nesting_below_the_recursion_limit_is_a_row_error() -> None:
    nested: object = "deep"
    for _ in range(500):
        nested = [nested]
    body = json_body([{"text": "ok"}, nested, {"text": "x", "metadata": {"k": nested}}])

    parsed = parse_upload(body, JSON)

    assert texts(parsed) == ["ok"]
    assert "expected a JSON object" in only_error(parsed, 2).message
    error = only_error(parsed, 3)
    assert error.field == "metadata.k"
    assert "string, number, boolean or null, got array" in error.message


# --- row validation -----------------------------------------------------------------------------


def test_nul_characters_are_stripped() -> None:
    csv_parsed = parse_upload(b"id,text\n1,bon\x00jour\n", CSV)
    json_parsed = parse_upload(
        b'[{"text": "bon\\u0000jour", "channel": "w\\u0000eb",'
        b' "metadata": {"k\\u0000": "v\\u0000"}}]',
        JSON,
    )

    assert texts(csv_parsed) == ["bonjour"]
    ((_, complaint),) = json_parsed.rows
    assert (complaint.text, complaint.channel, complaint.metadata) == ("bonjour", "web", {"k": "v"})


def test_text_of_only_nuls_and_spaces_is_empty() -> None:
    parsed = parse_upload(b'[{"text": " \\u0000 "}]', JSON)

    assert only_error(parsed, 1).message == "text is empty"


def test_text_length_limit_is_counted_after_stripping() -> None:
    rows = [{"text": "a" * 10_000}, {"text": "  " + "b" * 10_000 + "\n"}, {"text": "c" * 12_034}]

    parsed = parse_upload(json_body(rows), JSON)

    assert [row for row, _ in parsed.rows] == [1, 2]
    error = only_error(parsed, 3)
    assert error.field == "text"
    assert error.message == "text is longer than 10000 characters (12034)"


def test_row_error_reads_like_a_sentence() -> None:
    rows = [{"text": "ok"} for _ in range(16)]
    rows.append({"text": "x" * 12_034})

    parsed = parse_upload(json_body(rows), JSON)

    assert str(only_error(parsed, 17)) == (
        "row 17, field 'text': text is longer than 10000 characters (12034)"
    )
    assert len(parsed.rows) == 16


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"channel": "web"}, "text is required"),
        ({"text": ""}, "text is empty"),
        ({"text": "   "}, "text is empty"),
        ({"text": 12}, "text must be a string, got number"),
        ({"text": None}, "text must be a string, got null"),
    ],
)
def test_text_errors(row: dict[str, object], message: str) -> None:
    parsed = parse_upload(json_body([{"text": "ok"}, row]), JSON)

    assert texts(parsed) == ["ok"]
    error = only_error(parsed, 2)
    assert (error.field, error.message) == ("text", message)


@pytest.mark.parametrize(
    ("field", "limit"), [("external_id", 200), ("channel", 50), ("service", 100), ("region", 100)]
)
def test_optional_field_length_limits(field: str, limit: int) -> None:
    rows = [{"text": "ok", field: "x" * limit}, {"text": "too long", field: "y" * (limit + 1)}]

    parsed = parse_upload(json_body(rows), JSON)

    assert texts(parsed) == ["ok"]
    error = only_error(parsed, 2)
    assert error.field == field
    assert error.message == f"{field} is longer than {limit} characters ({limit + 1})"


@pytest.mark.parametrize(
    ("value", "accepted"), [(17, "17"), ("abc", "abc"), (1.5, None), (True, None)]
)
def test_external_id_accepts_strings_and_integers_only(value: object, accepted: str | None) -> None:
    parsed = parse_upload(json_body([{"id": value, "text": "x"}]), JSON)

    if accepted is None:
        assert only_error(parsed, 1).field == "id"
        assert "must be a string" in only_error(parsed, 1).message
    else:
        assert [c.external_id for _, c in parsed.rows] == [accepted]


def test_id_and_external_id_together_are_refused() -> None:
    parsed = parse_upload(json_body([{"id": "1", "external_id": "2", "text": "x"}]), JSON)

    assert parsed.rows == []
    assert "either 'id' or 'external_id'" in only_error(parsed, 1).message


def test_unknown_json_key_rejects_the_row_and_names_the_field() -> None:
    rows = [{"text": "ok"}, {"text": "x", "priority": "high"}, {"text": "also ok"}]

    parsed = parse_upload(json_body(rows), JSON)

    assert [row for row, _ in parsed.rows] == [1, 3]
    error = only_error(parsed, 2)
    assert error.field == "priority"
    assert "unknown field 'priority'" in error.message
    assert "metadata" in error.message


def test_every_invalid_field_of_a_row_is_reported_once() -> None:
    row = {"text": "", "channel": 5, "received_at": "hier", "metadata": {"k": {"a": 1}}}

    parsed = parse_upload(json_body([row]), JSON)

    assert sorted(e.field or "" for e in errors_at(parsed, 1)) == [
        "channel",
        "metadata.k",
        "received_at",
        "text",
    ]
    assert (parsed.received, parsed.rejected) == (1, 1)


def test_metadata_limits() -> None:
    rows = [
        {"text": "ok", "metadata": {f"k{i}": i for i in range(50)}},
        {"text": "x", "metadata": {f"k{i}": i for i in range(51)}},
        {"text": "x", "metadata": {"long": "v" * 1001}},
        {"text": "x", "metadata": {"k" * 101: "v"}},
        {"text": "x", "metadata": ["a"]},
        {"text": "ok", "metadata": None},
    ]

    parsed = parse_upload(json_body(rows), JSON)

    assert [row for row, _ in parsed.rows] == [1, 6]
    assert parsed.rows[1][1].metadata == {}
    assert only_error(parsed, 2).message == "metadata has 51 keys; at most 50 are allowed"
    assert only_error(parsed, 3).field == "metadata.long"
    assert "longer than 1000 characters (1001)" in only_error(parsed, 3).message
    assert "metadata keys must be 1 to 100 characters" in only_error(parsed, 4).message
    assert "must be an object" in only_error(parsed, 5).message


def test_metadata_numbers_must_be_finite() -> None:
    parsed = parse_upload(b'[{"text": "x", "metadata": {"big": 1e400, "ok": 1e300}}]', JSON)

    error = only_error(parsed, 1)
    assert (error.field, error.message) == ("metadata.big", "metadata.big must be a finite number")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T10:30:00", datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
        ("2024-05-01 10:30", datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
        (
            "2024-05-01T10:30:00+01:00",
            datetime(2024, 5, 1, 10, 30, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("2024-05-01T10:30:00Z", datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    ],
)
def test_received_at_accepts_iso_dates_and_makes_naive_ones_utc(
    value: str, expected: datetime
) -> None:
    parsed = parse_upload(json_body([{"text": "x", "received_at": value}]), JSON)

    received_at = parsed.rows[0][1].received_at
    assert received_at == expected
    assert received_at is not None and received_at.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("value", ["05/01/2024", "hier", 1714557000, "1714557000", "2024-13-01"])
def test_received_at_refuses_other_formats_and_epoch_numbers(value: object) -> None:
    parsed = parse_upload(json_body([{"text": "x", "received_at": value}]), JSON)

    assert parsed.rows == []
    error = only_error(parsed, 1)
    assert error.field == "received_at"
    assert "ISO 8601" in error.message


def test_duplicate_external_ids_reject_later_rows_naming_the_first() -> None:
    rows = [{"id": "a", "text": "1"}, {"id": "b", "text": "2"}, {"external_id": "a", "text": "3"}]

    parsed = parse_upload(json_body(rows), JSON)

    assert [row for row, _ in parsed.rows] == [1, 2]
    error = only_error(parsed, 3)
    assert error.field == "external_id"
    assert "already used by row 1" in error.message


def test_duplicate_external_ids_in_csv() -> None:
    parsed = parse_upload(b"id,text\n7,un\n8,deux\n7,trois\n7,quatre\n", CSV)

    assert texts(parsed) == ["un", "deux"]
    assert all("already used by row 1" in only_error(parsed, r).message for r in (3, 4))


def test_non_object_items_are_row_errors() -> None:
    parsed = parse_upload(b'[{"text": "ok"}, "just text", null, 3]', JSON)

    assert texts(parsed) == ["ok"]
    for row, kind in [(2, "string"), (3, "null"), (4, "number")]:
        assert only_error(parsed, row).message.endswith(f"got {kind}")


def test_errors_come_header_first_then_by_row() -> None:
    parsed = parse_upload(b"id,text,zzz\n1,\n2,ok,x\n3,,\n4,bad\n", CSV)

    assert [e.row for e in parsed.errors] == [None, 1, 3, 4]


# --- scale and robustness -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ten_thousand_rows() -> list[list[str]]:
    return [
        [f"c{i}", f"{ARABIC_COMPLAINTS[i % 4]} — réclamation {i}", "web", "2024-05-01"]
        for i in range(10_000)
    ]


def test_ten_thousand_row_csv_parses(ten_thousand_rows: list[list[str]]) -> None:
    body = csv_text(["id", "text", "channel", "received_at"], ten_thousand_rows).encode()

    parsed = parse_upload(body, CSV)

    assert parsed.errors == []
    assert len(parsed.rows) == parsed.received == 10_000
    assert parsed.rows[-1][0] == 10_000
    assert parsed.rows[-1][1].external_id == "c9999"


def test_ten_thousand_row_json_parses(ten_thousand_rows: list[list[str]]) -> None:
    rows = [
        {"id": i, "text": t, "channel": c, "received_at": d} for i, t, c, d in ten_thousand_rows
    ]

    parsed = parse_upload(json_body({"complaints": rows}), JSON)

    assert parsed.errors == []
    assert len(parsed.rows) == 10_000


CONTENT_TYPES = [JSON, JSONL, CSV, "text/csv; charset=iso-8859-6", "application/json; charset=x"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=400),
    content_type=st.sampled_from(CONTENT_TYPES),
    declared=st.sampled_from([None, "utf-8", "cp1256", "utf-16", "idna", "punycode"]),
)
def test_random_bytes_never_raise_anything_but_upload_error(
    body: bytes, content_type: str, declared: str | None
) -> None:
    try:
        parsed = parse_upload(body, content_type, max_rows=20, declared_encoding=declared)
    except UploadError as error:
        assert 400 <= error.status_code < 500
        assert error.message
    else:
        assert parsed.received >= len(parsed.rows)


STRUCTURED_ALPHABET = st.sampled_from(
    [*'{}[]",:;\t\n\r \\0123456789.-eE', "text", "id", "true", "null", "\\u0000", "ش", "é"]
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(STRUCTURED_ALPHABET, max_size=80),
    content_type=st.sampled_from([JSON, JSONL, CSV]),
    prefix=st.sampled_from(["", "text\n", "id;text;meta_x\n", '[{"text": ', '{"complaints": [']),
)
def test_random_structured_text_never_raises_anything_but_upload_error(
    parts: list[str], content_type: str, prefix: str
) -> None:
    body = (prefix + "".join(parts)).encode()
    try:
        parsed = parse_upload(body, content_type, max_rows=20)
    except UploadError as error:
        assert 400 <= error.status_code < 500
    else:
        assert all(isinstance(e, RowError) for e in parsed.errors)
