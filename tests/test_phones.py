"""E.164 normalisation: identical to phonenumbers on every value, and vectorised."""

from __future__ import annotations

import pandas as pd
import phonenumbers
import pytest
from phone_samples import mixed_phones

import contact_center.phones as phones
from contact_center.exceptions import InvalidParameter
from contact_center.phones import check_default_country, normalise_phone, normalise_phones


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
