"""E.164 normalisation: identical to phonenumbers on every value, and vectorised."""

from __future__ import annotations

import random
import re

import pandas as pd
import phonenumbers
import pyarrow as pa
import pytest
from support.phone_samples import mixed_phones

import contact_center.parsing.phones as phones
from contact_center.exceptions import InvalidParameter
from contact_center.parsing.phones import check_default_country, normalise_phone, normalise_phones


def reference(values: list[str | None], region: str) -> list[str | None]:
    """phonenumbers' answer for each value (computed once per unique value)."""
    answers = {v: normalise_phone(v, region) for v in set(values)}
    return [answers[v] for v in values]


def as_list(series: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else v for v in series.tolist()]


def test_equal_to_phonenumbers_on_a_large_mixed_sample() -> None:
    values = mixed_phones(100_000, seed=20240501)
    got = as_list(normalise_phones(pd.Series(values, dtype="str"), "US"))
    expected = reference(values, "US")
    mismatches = [(v, g, e) for v, g, e in zip(values, got, expected, strict=True) if g != e]
    assert mismatches == []
    # the sample is not trivial: many valid, many invalid, many countries
    valid = [e for e in expected if e is not None]
    assert 0.2 < len(valid) / len(values) < 0.8
    assert len({e[:3] for e in valid}) > 50


@pytest.mark.parametrize("region", ["CA", "GB", "DE", "AU", "IN", "FR", "AR", "BR", "JM", "gb"])
def test_equal_to_phonenumbers_for_other_default_countries(region: str) -> None:
    values = mixed_phones(15_000, seed=hash(region) % 1000, international=0.5)
    got = as_list(normalise_phones(pd.Series(values, dtype="str"), region))
    expected = reference(values, region.upper())
    assert [(v, g, e) for v, g, e in zip(values, got, expected, strict=True) if g != e] == []


EDGE_CASES = [
    ("(212) 736-5000", "+12127365000"),
    ("212.736.5000", "+12127365000"),
    ("1-212-736-5000", "+12127365000"),
    ("+1 212 736 5000", "+12127365000"),
    ("  2127365000  ", "+12127365000"),
    ("12127365000", "+12127365000"),
    ("2127365000.0", None),  # a spreadsheet float written as text: 11 digits
    ("+44 20 7946 0958", "+442079460958"),
    ("+44 (0)20 7946 0958", "+442079460958"),  # the trunk 0 is dropped
    ("011 44 20 7946 0958", "+442079460958"),  # the US international prefix
    ("00 44 20 7946 0958", None),  # 00 is not an international prefix from the US
    ("212-736-5000 x123", "+12127365000"),  # the extension is not part of E.164
    ("1-800-FLOWERS", "+18003569377"),
    ("736-5000", None),  # no area code
    ("911", None),
    ("555-0123", None),
    ("123-456-7890", None),  # area codes do not start with 1
    ("+0 212 736 5000", None),
    ("+999 1234567", None),
    ("++1 212 736 5000", "+12127365000"),
    ("２１２７３６５０００", "+12127365000"),  # full-width digits
    ("", None),
    ("   ", None),
    ("N/A", None),
    (None, None),
]


@pytest.mark.parametrize("value, expected", EDGE_CASES)
def test_edge_cases(value: str | None, expected: str | None) -> None:
    assert normalise_phone(value, "US") == expected  # what phonenumbers says
    got = as_list(normalise_phones(pd.Series([value, value], dtype="str"), "US"))
    assert got == [expected, expected]


def test_na_index_name_and_dtype_are_kept() -> None:
    series = pd.Series(
        ["2127365000", None, "", "bad"], index=[10, 20, 30, 40], name="phone1", dtype="str"
    )
    result = normalise_phones(series, "US")
    assert result.index.tolist() == [10, 20, 30, 40]
    assert result.name == "phone1"
    assert isinstance(result.dtype, pd.StringDtype)
    assert as_list(result) == ["+12127365000", None, None, None]
    assert normalise_phones(pd.Series([], dtype="str"), "US").tolist() == []


def test_sliced_and_object_input() -> None:
    values = [f"(212) 736-{i:04d}" for i in range(1000)] + ["+44 20 7946 0958"] * 10
    series = pd.Series(values, dtype="str")
    sliced = series.iloc[7:907]  # an Arrow slice with an offset into its buffers
    assert as_list(normalise_phones(sliced, "US")) == reference(values[7:907], "US")
    as_object = pd.Series(values, dtype=object)
    assert as_list(normalise_phones(as_object, "US")) == reference(values, "US")


def test_long_values_are_refused_like_phonenumbers() -> None:
    values = ["2" * 300, "212 736 5000" + " " * 5000, "+1 " + "-" * 250 + "2127365000", "1" * 18]
    got = as_list(normalise_phones(pd.Series(values, dtype="str"), "US"))
    assert got == reference(values, "US")


def test_the_fast_path_decides_the_common_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = phones._normalise_phone_cached

    def counting(value: str, region: str) -> str | None:
        calls.append(value)
        return original(value, region)

    monkeypatch.setattr(phones, "_normalise_phone_cached", counting)
    values = mixed_phones(20_000, seed=5, international=0.0, junk=0.0)
    got = as_list(normalise_phones(pd.Series(values, dtype="str"), "US"))
    assert got == reference(values, "US")
    # NANP formats never need the library; only a few "011..." (the international
    # prefix, then a country code too rare in the sample to be worth an array) do.
    assert len(calls) < 0.03 * len(values)
    assert all(call.lstrip(" (").startswith("011") for call in calls)
    intl = mixed_phones(20_000, seed=6, international=1.0, junk=0.0)
    normalise_phones(pd.Series(intl, dtype="str"), "US")
    assert len(set(calls)) < 0.5 * len(set(intl))  # most international ones do not either


def test_default_country_is_checked() -> None:
    assert check_default_country(" gb ") == "GB"
    with pytest.raises(InvalidParameter, match="default_country must be a two-letter region"):
        normalise_phones(pd.Series(["1"], dtype="str"), "USA")
    # phonenumbers itself only takes upper case; we take either.
    with pytest.raises(phonenumbers.NumberParseException):
        phonenumbers.parse("2127365000", "us")
    assert as_list(normalise_phones(pd.Series(["2127365000"], dtype="str"), "us")) == [
        "+12127365000"
    ]


# --- the automata over digits, against Python's re ----------------------------------------


def metadata_patterns() -> list[str]:
    """Every pattern of phonenumbers' metadata that the fast path matches numbers with."""
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS, PhoneMetadata

    metas = [PhoneMetadata.metadata_for_region(r, None) for r in SUPPORTED_REGIONS]
    metas += [
        PhoneMetadata.metadata_for_nongeo_region(code)
        for code, regions in COUNTRY_CODE_TO_REGION_CODE.items()
        if "001" in regions
    ]
    names = ("general_desc", "fixed_line", "mobile", "toll_free", "premium_rate")
    names += ("shared_cost", "personal_number", "voip", "pager", "uan", "voicemail")
    found: set[str] = set()
    for meta in metas:
        if meta is None:
            continue
        descs = [getattr(meta, name) for name in names]
        found.update(d.national_number_pattern for d in descs if d and d.national_number_pattern)
        prefixes = (meta.leading_digits, meta.international_prefix)
        found.update(p for p in (*prefixes, meta.national_prefix_for_parsing) if p)
    return sorted(found)


def digit_strings(automaton: phones._Automaton, rng: random.Random, count: int) -> list[str]:
    """Random walks that end in accepting states, their near misses, and random digits."""
    live = [[d for d in range(10) if automaton.table[s, d]] for s in range(len(automaton.table))]
    values = []
    for _ in range(count):
        state, digits = 1, ""
        while len(digits) < 20 and live[state]:
            if automaton.accepts[state, 0] and rng.random() < 0.3:
                break
            digit = rng.choice(live[state])
            digits, state = digits + str(digit), automaton.table[state, digit]
        at = rng.randrange(len(digits) + 1)
        values += [digits, digits[:at] + str(rng.randrange(10)) + digits[at + 1 :], digits[:-1]]
        values.append("".join(rng.choices("0123456789", k=rng.randrange(0, 18))))
    return values


def test_an_automaton_decides_like_re_for_every_metadata_pattern() -> None:
    rng = random.Random(11)
    refused = []
    for pattern in metadata_patterns():
        full = phones._automaton(((pattern, False),))
        prefix = phones._automaton(((pattern, True),))
        if full is None or prefix is None:
            refused.append(pattern)
            continue
        compiled = re.compile(pattern)
        values = digit_strings(full, rng, 60) + ["", "12a4", "٣٣٣", "1 2"]
        numbers = pa.array(values)
        got_full = full.accepts[full.run(numbers), 0].tolist()
        got_prefix = prefix.accepts[prefix.run(numbers), 0].tolist()
        assert got_full == [compiled.fullmatch(v) is not None for v in values], pattern
        assert got_prefix == [compiled.match(v) is not None for v in values], pattern
    # Only national-prefix rules with anchors or groups for a transform are refused.
    assert refused and all("$" in p or "(" in p for p in refused)
    assert len(refused) < 30


def test_the_refused_patterns_still_match_by_regex() -> None:
    pattern = "([34]\\d{6})$|1"
    assert phones._automaton(((pattern, True),)) is None
    values = ["1234", "3123456", "31234567", "2", "4000000"] * 100
    got = phones._prefix_match(pa.array(values), pattern).tolist()
    assert got == [re.match(pattern, v) is not None for v in values]


@pytest.mark.parametrize("code", [1, 7, 44, 49, 61, 86, 91, 262, 590, 800, 882, 979])
def test_validity_by_automaton_equals_the_regions_and_types_one_by_one(code: int) -> None:
    validity = phones._validity(code)
    assert validity is not None
    automaton, _ = validity
    rng = random.Random(code)
    walker = phones._Automaton(automaton.table, automaton.accepts.any(axis=1, keepdims=True))
    values = [v for v in digit_strings(walker, rng, 3000) if 2 <= len(v) <= 17]
    got = phones._is_valid(code, pa.array(values)).tolist()
    assert got == [phones._is_valid_one(code, v) for v in values]
    assert 0 < sum(got) < len(got)


def test_the_fast_shape_read_from_bytes_equals_its_regex() -> None:
    rng = random.Random(3)
    alphabet = [*"0123456789", *" ().-", *"+\t/x#,", "é", "٣"]
    weights = [5] * 10 + [2] * 5 + [1] * 8
    values: list[str | None] = [
        "".join(rng.choices(alphabet, weights, k=rng.randrange(0, 16))) for _ in range(50_000)
    ]
    values += ["", "+", " +", "  +12 3", "+ 12 3", "1+23", "++123", "\t+123", "1" * 251, None]
    shape = phones._Shape.of(pa.array(values, pa.string()))
    for i, value in enumerate(values):
        digits = "".join(c for c in value or "" if c in "0123456789")
        regex = value is not None and re.fullmatch(r" *\+?[0-9 ().\-]+", value) is not None
        fast = regex and len(digits) >= 3 and len(value or "") <= 250
        assert shape.fast[i] == fast, value
        if fast:
            assert shape.plus[i] == (re.match(r" *\+", value or "") is not None), value
        hopeless = value is None or (value.isascii() and len(digits) < 2)
        assert shape.hopeless[i] == hopeless, value
        assert shape.digits[i].as_py() == digits


def test_country_codes_are_the_shortest_known_leading_digits() -> None:
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

    def reference(digits: str) -> tuple[int, int]:
        for size in (1, 2, 3):
            head = digits[:size]
            if len(head) == size and head[0] != "0" and int(head) in COUNTRY_CODE_TO_REGION_CODE:
                return int(head), size
        return 0, 0

    rng = random.Random(8)
    values = ["".join(rng.choices("0123456789", k=rng.randrange(0, 6))) for _ in range(20_000)]
    values += [str(code) for code in COUNTRY_CODE_TO_REGION_CODE] + ["0", "00", "044", "1", ""]
    country, width = phones._country_codes(pa.array(values))
    assert list(zip(country.tolist(), width.tolist(), strict=True)) == [
        reference(v) for v in values
    ]
