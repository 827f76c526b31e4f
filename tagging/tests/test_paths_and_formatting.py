from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from decimal import Decimal

import pytest

from organizations.pseudonyms import PATTERN, column_pseudonym, pseudonym
from tagging.formatting import COERCED, COERCERS, as_text, coerce, pseudonymiser
from tagging.paths import FieldPathError, compile_getter, parse_field_path
from tagging.resolution import compile_tags, pseudonymise_raw, resolve_tags, tag_pseudonym_column


@pytest.mark.parametrize(
    ("entity", "path", "expected"),
    [
        ("case", "business_unit", "business_unit"),
        ("case", " custom_fields.hr.region ", "custom_fields.hr.region"),
        ("riu", "reporter_relationship", "reporter_relationship"),
        ("investigation", "custom_fields.legal_hold", "custom_fields.legal_hold"),
        ("case", "custom_fields.a-b.c_d.e1", "custom_fields.a-b.c_d.e1"),
    ],
)
def test_parse_accepts_core_fields_and_custom_keys(entity, path, expected):
    assert parse_field_path(entity, path).path == expected


@pytest.mark.parametrize(
    ("entity", "path", "message"),
    [
        ("case", "", "A field path is needed"),
        ("case", "__class__", "Relations and '__' lookups are not allowed"),
        ("case", "custom_fields.__class__", "do not start with '__'"),
        ("case", "assignee", "is a relation"),
        ("case", "assignee.password", "Relations and '__' lookups are not allowed"),
        ("case", "primary_riu__reference", "Relations and '__' lookups"),
        ("case", "organization", "is a relation"),
        ("case", "secret_notes", "Unknown field 'secret_notes' for a case"),
        ("riu", "business_unit", "Unknown field 'business_unit' for a riu"),
        ("case", "custom_fields", "Name a key after custom_fields"),
        ("case", "custom_fields.hr..region", "Empty key"),
        ("case", "custom_fields.hr.", "Empty key"),
        ("case", "title.upper", "has no sub-fields"),
        ("case", "custom_fields.a b", "is not allowed"),
        ("person", "title", "Unknown source entity 'person'"),
    ],
)
def test_parse_rejects_with_a_message_that_says_what_is_allowed(entity, path, message):
    with pytest.raises(FieldPathError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_field_path(entity, path)


def test_getter_reads_nested_custom_fields_and_core_values():
    row = {"business_unit": "Retail", "custom_fields": {"hr": {"region": "EMEA", "deep": {"x": {"y": 3}}}, "n": 1}}
    assert compile_getter(parse_field_path("case", "business_unit"))(row) == "Retail"
    assert compile_getter(parse_field_path("case", "custom_fields.n"))(row) == 1
    assert compile_getter(parse_field_path("case", "custom_fields.hr.region"))(row) == "EMEA"
    assert compile_getter(parse_field_path("case", "custom_fields.hr.deep.x.y"))(row) == 3
    assert compile_getter(parse_field_path("case", "custom_fields.hr.region.z"))(row) is None
    assert compile_getter(parse_field_path("case", "custom_fields.missing.k"))(row) is None
    assert compile_getter(parse_field_path("case", "custom_fields.hr.region"))({"custom_fields": None}) is None


@pytest.mark.parametrize(
    ("value", "data_type", "typed", "text"),
    [
        ("12", "number", 12, "12"),
        (-3.5, "number", -3.5, "-3.5"),
        ("1,234.50", "number", Decimal("1234.50"), "1234.50"),
        ("n/a", "number", "n/a", "n/a"),
        ("2026-03-01", "date", dt.date(2026, 3, 1), "2026-03-01"),
        ("2026-03-01T10:00:00+00:00", "date", dt.date(2026, 3, 1), "2026-03-01"),
        ("soon", "date", "soon", "soon"),
        (
            "2026-03-01T10:00:00+01:00",
            "datetime",
            dt.datetime(2026, 3, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "2026-03-01T10:00:00+01:00",
        ),
        (True, "boolean", True, "Yes"),
        ("no", "boolean", False, "No"),
        ("maybe", "boolean", "maybe", "maybe"),
        (["a", "b", None, 3], "list", "a; b; 3", "a; b; 3"),
        ("single", "list", "single", "single"),
        (42, "text", "42", "42"),
        ({"k": 1}, "text", '{"k": 1}', '{"k": 1}'),
        ("", "text", None, ""),
        (None, "number", None, ""),
    ],
)
def test_coerce_keeps_types_and_keeps_misfits_as_text(value, data_type, typed, text):
    assert coerce(value, data_type) == typed
    assert as_text(coerce(value, data_type)) == text


def test_resolve_tags_uses_each_tags_entity_in_slot_order():
    tags = compile_tags(
        [
            {
                "slot": 2,
                "label": "Interviews",
                "source_entity": "investigation",
                "field_path": "custom_fields.interviews",
                "data_type": "number",
            },
            {
                "slot": 1,
                "label": "Region",
                "source_entity": "case",
                "field_path": "custom_fields.hr.region",
                "data_type": "text",
            },
            {"slot": 3, "label": "Lang", "source_entity": "riu", "field_path": "language", "data_type": "text"},
        ]
    )
    assert [t.label for t in tags] == ["Region", "Interviews", "Lang"]
    entities = {
        "case": {"custom_fields": {"hr": {"region": "AMER"}}},
        "investigation": {"custom_fields": {"interviews": "4"}},
        "riu": None,
    }
    assert resolve_tags(tags, entities) == ["AMER", 4, None]


KEY = b"k" * 32


def _p(column: str, text: str) -> str | None:
    return pseudonym(key=KEY, column=column, value=text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("Ana Silva", "Ana Silva"),
        (True, "true"),
        (False, "false"),
        (40711, "40711"),
        (7.0, "7.0"),
        (2.5, "2.5"),
        (Decimal("12.50"), "12.50"),
        (dt.date(2026, 3, 1), "2026-03-01"),
    ],
)
def test_pseudonymise_raw_uses_the_values_json_text(value, text):
    assert pseudonymise_raw(value, key=KEY, column="case.custom_fields.x") == _p("case.custom_fields.x", text)
    assert re.match(PATTERN, pseudonymise_raw(value, key=KEY, column="case.custom_fields.x") or "")


def test_pseudonymise_raw_takes_each_person_of_a_list_and_leaves_blanks_empty():
    column = "case.custom_fields.witnesses"
    both = pseudonymise_raw(["Ana", None, " ", True, "ANA "], key=KEY, column=column)
    assert both == "; ".join([_p(column, "ana"), _p(column, "true"), _p(column, "ana")])  # type: ignore[list-item]
    for blank in (None, "", "  ", [], [None, ""]):
        assert pseudonymise_raw(blank, key=KEY, column=column) is None
    # The column and the key are part of the pseudonym.
    assert pseudonymise_raw("Ana", key=KEY, column=column) != pseudonymise_raw("Ana", key=KEY, column="case.title")
    assert pseudonymise_raw("Ana", key=KEY, column=column) != pseudonymise_raw("Ana", key=b"other", column=column)


def test_an_exports_pseudonymiser_remembers_people_and_gives_the_same_pseudonyms():
    column = "party.subject_names"
    pseudonymise = pseudonymiser(key=KEY, column=column, remember=2)
    values = ["Ana", ["Ana", " ", "Bo"], "ANA ", None, "", [None, ""], 7.0, "Cy", "Ana", ["Bo", "Dee"]]
    assert [pseudonymise(v) for v in values] == [pseudonymise_raw(v, key=KEY, column=column) for v in values]
    # Another column's or another key's pseudonymiser does not share what this one remembers.
    assert pseudonymiser(key=KEY, column="party.witness_names")("Ana") != pseudonymise("Ana")
    assert pseudonymiser(key=b"other", column=column)("Ana") != pseudonymise("Ana")


def test_compiled_tags_carry_sensitivity_and_their_pseudonym_column():
    old, new = compile_tags(
        [
            {
                "slot": 1,
                "label": "Old",
                "source_entity": "case",
                "field_path": " custom_fields.a ",
                "data_type": "text",
            },
            {
                "slot": 2,
                "label": "Phone",
                "source_entity": "riu",
                "field_path": "custom_fields.caller.phone",
                "data_type": "text",
                "sensitivity": "identity",
            },
        ]
    )
    assert (old.sensitivity, old.is_identity) == ("standard", False)  # snapshots from before sensitivity
    assert (new.sensitivity, new.is_identity) == ("identity", True)
    assert old.pseudonym_column == "case.custom_fields.a" == tag_pseudonym_column("case", "custom_fields.a")
    assert new.pseudonym_column == "riu.custom_fields.caller.phone"


@pytest.mark.parametrize("key", [b"k" * 32, b"", b"x" * 64, bytes(range(256)) * 2])
def test_a_columns_pseudonyms_are_hmac_sha256_of_the_column_and_the_normalised_value(key):
    column = "party.subject_names"
    of = column_pseudonym(key=key, column=column)
    for value in ["Ana Silva", "  ZOË Ångström\u00a0", "İlker", "日本 太郎", "x" * 200, 7, 2.5]:
        normalised = str(value).strip().lower()
        expected = hmac.new(key, f"{column}:{normalised}".encode(), hashlib.sha256).hexdigest()[:10]
        assert of(value) == pseudonym(key=key, column=column, value=value) == f"PSN-{expected}"
    assert of(None) is None and of(" \t") is None and of("") is None


@pytest.mark.parametrize(
    "value",
    [
        "text",
        "",
        "  x ",
        0,
        -7,
        10**30,
        2.5,
        float("nan"),
        Decimal("12.50"),
        True,
        False,
        dt.date(2026, 3, 1),
        dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC),
    ],
)
def test_the_classes_a_data_type_keeps_are_the_values_its_coercer_gives_back_unchanged(value):
    """Exports skip the coercer for them (``exports.columns``): it must give them back as they are."""
    kept = [data_type for data_type, classes in COERCED.items() if value.__class__ in classes]
    assert [COERCERS[data_type](value) is value for data_type in kept] == [True] * len(kept)
