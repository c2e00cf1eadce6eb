"""Mapping and row rules of calling-list files (contact_center.parsing.lists)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from support.phone_samples import mixed_phones

from contact_center.exceptions import InvalidFile, InvalidParameter
from contact_center.parsing.files import read_table
from contact_center.parsing.lists import (
    VALID_COLUMNS,
    ParsedChunk,
    RecordParser,
    validate_mapping,
)
from contact_center.parsing.phones import normalise_phone
from contact_center.parsing.table_reader import Chunk


def frame(rows: list[list[str]], header: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=header, dtype="str")


def parse_all(
    path: Path, mapping: dict[str, str] | None = None, chunk_rows: int = 3, key: str = "account"
) -> list[ParsedChunk]:
    reader = read_table(path, name=path.name, chunk_rows=chunk_rows)
    resolved = validate_mapping(mapping, reader.header, key, file=path.name)
    parser = RecordParser(resolved, key, "US", path.name)
    return [parser.parse(chunk) for chunk in reader]


def combined(parsed: list[ParsedChunk]) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    valid = pa.concat_tables([p.valid for p in parsed]).to_pandas(types_mapper=pd.ArrowDtype)
    rejects = pd.concat([p.rejects for p in parsed], ignore_index=True)
    return valid, rejects, sum(p.invalid_phones for p in parsed)


# --- mapping ----------------------------------------------------------------------------


def test_without_a_mapping_field_named_columns_map_and_the_rest_is_custom() -> None:
    header = ["Account", " PHONE1 ", "phone2", "First_Name", "Segment", "zip"]
    assert validate_mapping(None, header, "account", file="f.csv") == {
        "Account": "account",
        " PHONE1 ": "phone1",
        "phone2": "phone2",
        "First_Name": "first_name",
        "zip": "zip",
    }


def test_a_mapping_matches_columns_ignoring_case_and_spaces() -> None:
    header = ["Acct No", "Mobile", "Home", "Zip Code"]
    mapping = {"acct no ": "account", "MOBILE": "phone1", "home": "Phone2", "zip code": "zip"}
    assert validate_mapping(mapping, header, "account", file="f.csv") == {
        "Acct No": "account",
        "Mobile": "phone1",
        "Home": "phone2",
        "Zip Code": "zip",
    }


@pytest.mark.parametrize(
    "mapping, error, match",
    [
        ({"Acct": "account", "Mobile": "cell"}, InvalidParameter, r"'cell' is not a list field"),
        (
            {"Acct": "account", "Fax": "phone1"},
            InvalidFile,
            r"file 'f.csv', column 'Fax': no column named 'Fax'; "
            r"the file has 'Acct', 'Mobile', 'Home'",
        ),
        (
            {"Acct": "account", "Mobile": "phone1", "Home": "phone1"},
            InvalidParameter,
            r"more than one column to the field 'phone1'",
        ),
        ({"Mobile": "phone1"}, InvalidParameter, r"no column to the key field 'account'"),
        ({"Acct": "account"}, InvalidParameter, r"no column to a phone field"),
    ],
)
def test_bad_mappings(mapping: dict[str, str], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        validate_mapping(mapping, ["Acct", "Mobile", "Home"], "account", file="f.csv")


def test_without_a_mapping_the_key_and_a_phone_column_must_exist() -> None:
    with pytest.raises(InvalidFile, match=r"no column is named 'account' \(the key field\)"):
        validate_mapping(None, ["id", "phone1"], "account", file="f.csv")
    with pytest.raises(InvalidFile, match=r"no column is named phone1..phone10"):
        validate_mapping(None, ["account", "mobile"], "account", file="f.csv")
    with pytest.raises(InvalidParameter, match=r"key_field: 'acct' is not a list field"):
        validate_mapping(None, ["account", "phone1"], "acct", file="f.csv")


# --- row rules ----------------------------------------------------------------------------

RULES_CSV = """account,phone1,phone2,first_name,zip,Segment,note
A1,(212) 736-5000,,Ana,02134,gold,"said ""call back"", later"
,212-736-5001,,Blank,10001,x,
A2,not a phone,555-0100,Bo,,x,
A2,212-736-5002,,Bo again,,x,
A1,212-736-5003,,Ana twice,,x,
A3,123,+44 20 7946 0958,Cy,,x,
  A4  ,  2127365004  ,,  Di  ,,x,
,nope,,Nobody,,x,
A4,212-736-5005,,Di twice,,x,
A5,nope,,Ed,,x,
A5,also nope,,Ed again,,x,
"""


def test_each_row_rule_with_exact_counts_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(RULES_CSV, encoding="utf-8")
    parsed = parse_all(path, chunk_rows=3)  # rows 2-4, 5-7, 8-10, 11-12
    assert len(parsed) == 4
    valid, rejects, invalid_phones = combined(parsed)
    assert list(valid.columns) == list(VALID_COLUMNS)
    assert valid["record_key"].tolist() == ["A1", "A3", "A4"]
    assert valid["row"].tolist() == [2, 7, 8]
    assert Counter(rejects["reason"]) == {"missing_key": 2, "no_valid_phone": 2, "duplicate_key": 4}
    assert dict(zip(rejects["row"], rejects["reason"], strict=True)) == {
        3: "missing_key",
        4: "no_valid_phone",
        5: "duplicate_key",  # A2 again: the first A2 was rejected, and still decides
        6: "duplicate_key",
        9: "missing_key",  # blank key and no phone: the key rule comes first
        10: "duplicate_key",  # A4 was first seen, trimmed, in an earlier chunk
        11: "no_valid_phone",
        12: "duplicate_key",  # a repeat of a rejected row, with no phone either
    }
    # A3 kept its valid phone and dropped the invalid one
    assert invalid_phones == 1
    a3 = valid.set_index("record_key").loc["A3"]
    assert pd.isna(a3["phone1"]) and a3["phone2"] == "+442079460958"
    assert sum(p.rows_read for p in parsed) == 11


def test_values_are_trimmed_text_and_blanks_are_na(tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(RULES_CSV, encoding="utf-8")
    valid, _, _ = combined(parse_all(path))
    a1, a4 = valid.iloc[0], valid.iloc[2]
    assert (a1["account"], a1["phone1"], a1["first_name"], a1["zip"]) == (
        "A1",
        "+12127365000",
        "Ana",
        "02134",
    )
    assert pd.isna(a1["phone2"]) and pd.isna(a1["state"]) and pd.isna(a1["call_at"])
    assert (a4["record_key"], a4["phone1"], a4["first_name"]) == ("A4", "+12127365004", "Di")
    assert pd.isna(a4["zip"])
    assert json.loads(a1["custom_fields"]) == {"Segment": "gold", "note": 'said "call back", later'}
    assert json.loads(a4["custom_fields"]) == {"Segment": "x", "note": ""}
    schema = pa.concat_tables(p.valid for p in parse_all(path)).schema
    assert schema == pa.schema(
        [("row", pa.int64()), *((c, pa.string()) for c in VALID_COLUMNS[1:])]
    )


def test_rejects_keep_the_original_row(tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(RULES_CSV, encoding="utf-8")
    _, rejects, _ = combined(parse_all(path))
    assert list(rejects.columns) == [
        "row", "account", "phone1", "phone2", "first_name", "zip", "Segment", "note", "reason"
    ]  # fmt: skip
    # untrimmed, as in the file
    duplicate_a4 = rejects[rejects["row"] == 10].iloc[0]
    assert duplicate_a4["first_name"] == "Di twice"
    assert rejects[rejects["row"] == 4].iloc[0]["phone1"] == "not a phone"


def test_clashing_column_names_in_rejects_are_renamed() -> None:
    parser = RecordParser({"account": "account", "phone1": "phone1"}, "account", "US", "f.csv")
    header = ["account", "phone1", "Row", "reason"]
    chunk = Chunk.from_frame(frame([["A1", "x", "1", "why"]], header), 2)
    parsed = parser.parse(chunk)
    assert list(parsed.rejects.columns) == [
        "row",
        "account",
        "phone1",
        "Row (file)",
        "reason (file)",
        "reason",
    ]
    assert parsed.rejects.iloc[0].tolist() == [2, "A1", "x", "1", "why", "no_valid_phone"]


def test_custom_fields_json_escapes_everything() -> None:
    nasty = ['quote " back \\ slash', "new\nline\ttab\rcr", "ctl \x01 \x1f", "é € 漢字 🙂", ""]
    rows = [[f"K{i}", "2127365000", v, "plain"] for i, v in enumerate(nasty)]
    parser = RecordParser({"id": "account", "tel": "phone1"}, "account", "US", "f.csv")
    parsed = parser.parse(Chunk.from_frame(frame(rows, ["id", "tel", "Free Text", "Other "]), 2))
    decoded = [json.loads(v) for v in parsed.valid["custom_fields"].to_pylist()]
    assert decoded == [{"Free Text": v.strip(), "Other": "plain"} for v in nasty]
    # no unmapped column: no custom fields at all
    bare = RecordParser({"id": "account", "tel": "phone1"}, "account", "US", "f.csv")
    out = bare.parse(Chunk.from_frame(frame([["K1", "2127365000"]], ["id", "tel"]), 2))
    assert out.valid["custom_fields"].null_count == 1


def test_a_phone_key_deduplicates_by_e164() -> None:
    parser = RecordParser({"tel": "phone1", "name": "first_name"}, "phone1", "US", "f.csv")
    rows = [["(212) 736-5000", "a"], ["212.736.5000", "b"], ["+1 212 736 5000", "c"], ["bad", "d"]]
    parsed = parser.parse(Chunk.from_frame(frame(rows, ["tel", "name"]), 2))
    assert parsed.valid["record_key"].to_pylist() == ["+12127365000"]
    assert parsed.rejects["reason"].tolist() == ["duplicate_key", "duplicate_key", "no_valid_phone"]


def test_a_value_too_long_for_its_field_names_row_and_column() -> None:
    parser = RecordParser(
        {"id": "account", "tel": "phone1", "Zip": "zip"}, "account", "US", "f.csv"
    )
    rows = [["K1", "2127365000", "02134"], ["K2", "2127365001", "9" * 41]]
    with pytest.raises(
        InvalidFile,
        match=r"file 'f.csv', row 3, column 'Zip': the value is 41 characters long; "
        r"zip takes at most 40",
    ):
        parser.parse(Chunk.from_frame(frame(rows, ["id", "tel", "Zip"]), 2))


def test_empty_chunk_and_bad_country() -> None:
    parser = RecordParser({"id": "account", "tel": "phone1"}, "account", "US", "f.csv")
    parsed = parser.parse(Chunk.from_frame(frame([], ["id", "tel"]), 2))
    assert (len(parsed.valid), len(parsed.rejects), parsed.invalid_phones) == (0, 0, 0)
    assert parsed.valid.column_names == list(VALID_COLUMNS)
    with pytest.raises(InvalidParameter, match="default_country"):
        RecordParser({"id": "account", "tel": "phone1"}, "account", "Mars", "f.csv")


# --- the rules against a plain row-by-row reference --------------------------------------------


def reference_rules(
    rows: list[dict[str, str]],
) -> tuple[list[tuple[int, str]], dict[int, str], int]:
    """The row rules written the obvious way, one row at a time."""
    seen: set[str] = set()
    rejects, keys, invalid = [], {}, 0
    for number, row in enumerate(rows, start=2):
        key = row["account"].strip()
        phones = [row[f].strip() for f in ("phone1", "phone2", "phone3")]
        e164 = [normalise_phone(p, "US") if p else None for p in phones]
        if not key:
            rejects.append((number, "missing_key"))
        elif key in seen:
            rejects.append((number, "duplicate_key"))
        elif not any(e164):
            rejects.append((number, "no_valid_phone"))
        else:
            keys[number] = key
            invalid += sum(1 for p, e in zip(phones, e164, strict=True) if p and not e)
        if key:
            seen.add(key)
    return rejects, keys, invalid


def test_vectorised_rules_equal_a_row_by_row_reference(tmp_path: Path) -> None:
    rng = random.Random(42)
    count = 30_000
    phones = mixed_phones(count * 3, seed=9)
    rows = []
    for i in range(count):
        roll = rng.random()
        key = "" if roll < 0.03 else " " if roll < 0.04 else f"K{rng.randrange(count)}"
        rows.append(
            {
                "account": key,
                "phone1": phones[3 * i],
                "phone2": phones[3 * i + 1] if roll < 0.5 else "",
                "phone3": phones[3 * i + 2] if roll < 0.2 else "",
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "big.csv", index=False)
    parsed = parse_all(tmp_path / "big.csv", chunk_rows=7_000)
    valid, rejects, invalid = combined(parsed)
    expected_rejects, expected_keys, expected_invalid = reference_rules(rows)
    assert list(zip(rejects["row"], rejects["reason"], strict=True)) == expected_rejects
    assert dict(zip(valid["row"], valid["record_key"], strict=True)) == expected_keys
    assert invalid == expected_invalid
    assert len(valid) + len(rejects) == count
    assert Counter(rejects["reason"])["duplicate_key"] > 1000


def test_the_trim_check_never_misses_a_value_to_trim() -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from contact_center.parsing.lists import _may_need_trim

    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    values = pa.array([f"a{c}" for c in chars] + [f"{c}a" for c in chars])
    trimmed = pc.not_equal(pc.utf8_trim_whitespace(values), values)
    changed = values.filter(trimmed).to_pylist()
    assert len(changed) > 40  # Unicode spaces, not only ASCII
    assert all(_may_need_trim(pa.array(["x", value, "y"])) for value in changed)
    assert not _may_need_trim(pa.array(["plain", "a b", "", "02134"]))
    assert not _may_need_trim(pa.array([" x", "y", "z"]).slice(1))


def test_json_escaping_equals_json_dumps_on_every_kind_of_character() -> None:
    from contact_center.parsing.json_text import json_escaped as _json_escaped

    rng = random.Random(7)
    alphabet = [chr(c) for c in range(0x80)] + ["é", "€", "漢", "🙂", "\u2028", "\x7f"]
    values = ["", "plain", '"', "\\", "\\\\n", "\x00", "\b\f", 'a\tb\x1fc"d\\e\nf\rg']
    values += ["".join(rng.choices(alphabet, k=rng.randrange(0, 12))) for _ in range(5000)]
    for array in (pa.array(values), pa.array(["skip", *values]).slice(1)):
        escaped = _json_escaped(array).to_pylist()
        assert escaped == [json.dumps(v, ensure_ascii=False)[1:-1] for v in values]
    assert _json_escaped(pa.array(["a", "", "b c"])).to_pylist() == ["a", "", "b c"]


def test_seen_keys_remember_exact_keys_across_batches() -> None:
    from contact_center.parsing.lists import _SeenKeys

    rng = random.Random(3)
    # Keys that differ only in case, in a trailing byte, or in how an accent is written.
    near = ["AB", "ab", "Ab", "AB1", "AB\x00", "ABC", "é", "e\u0301", "漢", "🙂", "x" * 300]
    seen = _SeenKeys()
    known: set[str] = set()
    for _ in range(30):
        batch = list({rng.choice(near) + str(rng.randrange(40)) for _ in range(60)})
        batch += [k for k in near if rng.random() < 0.3]
        assert seen.remember(pa.array(batch, pa.string())).tolist() == [k in known for k in batch]
        known.update(batch)
    assert seen.remember(pa.array([], pa.string())).tolist() == []
    sliced = pa.array(["pad", "AB", "new"], pa.string()).slice(1)
    assert seen.remember(sliced).tolist() == [True, False]


def test_keys_that_differ_only_in_trailing_bytes_or_case_are_not_duplicates(
    tmp_path: Path,
) -> None:
    keys = ["AB", "ab", "AB1", "Ab", "AB", "ab", "AB1", "\u00e9", "e\u0301", "ABC", "e\u0301"]
    lines = ["account,phone1"] + [f"{k},212-736-{5000 + i:04d}" for i, k in enumerate(keys)]
    path = tmp_path / "near.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parsed = parse_all(path, chunk_rows=2)  # every repeat is in a later chunk
    valid, rejects, _ = combined(parsed)
    assert valid["record_key"].tolist() == ["AB", "ab", "AB1", "Ab", "\u00e9", "e\u0301", "ABC"]
    assert dict(zip(rejects["row"], rejects["reason"], strict=True)) == {
        6: "duplicate_key",
        7: "duplicate_key",
        8: "duplicate_key",
        12: "duplicate_key",
    }
