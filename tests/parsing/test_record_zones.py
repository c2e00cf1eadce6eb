"""Each record's time zone from its data, through the real list parser; calling hours.

The zone tables are the libraries' own (``zipcodes``, ``phonenumbers``, ``us``): the
expected zones below are the tz database's names for those places, written out.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phonenumbers
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from phonenumbers import timezone as phone_timezone

from contact_center.exceptions import InvalidParameter
from contact_center.parsing.lists import RecordParser
from contact_center.parsing.record_zones import (
    ZoneAssigner,
    check_zone_precedence,
    warm_zone_tables,
)
from contact_center.parsing.table_reader import Chunk
from contact_center.storage.calling_hours import (
    CallingHours,
    calling_days_text,
    parse_calling_days,
    parse_window,
)
from contact_center.storage.list_options import ImportOptions

#: Every field this file fills, so that each test row can leave any of them blank.
MAPPING = {"account": "account", "phone1": "phone1", "zip": "zip", "state": "state"}
#: A toll-free number: valid, yet it tells no place (phonenumbers gives all 42 NANP zones).
TOLL_FREE = "800-234-5678"
NEW_YORK_PHONE = "212-736-5000"

#: place -> (ZIP, phone, state, the zone by ZIP, the zones by phone, the zones by state)
PLACES: dict[str, tuple[str, str, str, str, str, str]] = {
    "New York": ("10001", "212-736-5000", "NY", *["America/New_York"] * 3),
    "Chicago": ("60601", "312-736-5000", "IL", *["America/Chicago"] * 3),
    "Denver": ("80202", "303-736-5000", "CO", *["America/Denver"] * 3),
    "Phoenix": ("85004", "602-736-5000", "AZ", *["America/Phoenix"] * 3),
    "Los Angeles": ("90012", "213-736-5000", "CA", *["America/Los_Angeles"] * 3),
    # Alaska's 907 and the state span Anchorage's zone and Adak's: both are kept.
    "Anchorage": (
        "99501",
        "907-736-5000",
        "AK",
        "America/Anchorage",
        "America/Adak America/Anchorage",
        "America/Adak America/Anchorage",
    ),
    "Honolulu": ("96813", "808-736-5000", "HI", *["Pacific/Honolulu"] * 3),
    "Puerto Rico": ("00901", "787-736-5000", "PR", *["America/Puerto_Rico"] * 3),
}


def parse(rows: list[dict[str, str]], zones: ZoneAssigner | None = None) -> Any:
    """The rows through the real parser, as it runs in the import."""
    columns = ["account", "phone1", "zip", "state", "timezone"]
    table = pa.table({c: pa.array([r.get(c, "") for r in rows], pa.string()) for c in columns})
    mapping = {c: c for c in columns}
    parser = RecordParser(mapping, "account", "US", "leads.csv", zones=zones)
    return parser.parse(Chunk(table=table, first_row=2))


def zones_of(parsed: Any) -> dict[str, tuple[str | None, str | None]]:
    valid = parsed.valid.to_pydict()
    return {
        key: (zone, source)
        for key, zone, source in zip(
            valid["record_key"], valid["timezone"], valid["timezone_source"], strict=True
        )
    }


def test_every_place_by_zip_by_phone_and_by_state() -> None:
    rows = []
    for place, (zip_code, phone, state, *_) in PLACES.items():
        # By ZIP: a New York phone and no state; the ZIP comes first.
        rows.append({"account": f"{place}/zip", "zip": zip_code, "phone1": NEW_YORK_PHONE})
        rows.append({"account": f"{place}/phone", "phone1": phone})
        rows.append({"account": f"{place}/state", "state": state, "phone1": TOLL_FREE})
    got = zones_of(parse(rows))
    expected = {}
    for place, (*_, by_zip, by_phone, by_state) in PLACES.items():
        expected[f"{place}/zip"] = (by_zip, "zip")
        expected[f"{place}/phone"] = (by_phone, "phone")
        expected[f"{place}/state"] = (by_state, "state")
    assert got == expected


def test_the_zip_table_is_saved_once_and_read_back(tmp_path: Path) -> None:
    import zipcodes

    assert warm_zone_tables(tmp_path) == "built"
    [saved] = tmp_path.iterdir()
    assert saved.name == f"zip-zones-{zipcodes.__version__}.arrow"
    table = feather.read_table(saved).to_pydict()
    by_zip = dict(zip(table["zip"], table["zone"], strict=True))
    assert by_zip["10001"] == "America/New_York" and by_zip["99501"] == "America/Anchorage"
    assert len(by_zip) > 40_000  # every ZIP that zipcodes gives a zone
    stamp = saved.stat().st_mtime_ns
    assert warm_zone_tables(tmp_path) == "kept" and saved.stat().st_mtime_ns == stamp


def test_zips_with_a_leading_zero_keep_it_and_resolve() -> None:
    parsed = parse(
        [
            {"account": "cambridge", "zip": "02134", "phone1": TOLL_FREE},
            {"account": "holtsville", "zip": "00501", "phone1": TOLL_FREE},
            {"account": "zip+4", "zip": "02134-1234", "phone1": TOLL_FREE},
            {"account": "not a zip", "zip": "2134", "phone1": TOLL_FREE},
        ]
    )
    assert parsed.valid["zip"].to_pylist() == ["02134", "00501", "02134-1234", "2134"]
    assert zones_of(parsed) == {
        "cambridge": ("America/New_York", "zip"),
        "holtsville": ("America/New_York", "zip"),
        "zip+4": ("America/New_York", "zip"),
        "not a zip": (None, None),  # no ZIP, a phone of no place, no state, no default
    }


def test_an_area_code_or_state_that_spans_two_zones_keeps_both() -> None:
    got = zones_of(
        parse(
            [
                {"account": "tennessee", "state": "TN", "phone1": TOLL_FREE},
                {"account": "idaho 208-832", "phone1": "208-832-7000"},
            ]
        )
    )
    assert got == {
        "tennessee": ("America/Chicago America/New_York", "state"),
        "idaho 208-832": ("America/Boise America/Los_Angeles", "phone"),
    }


def test_the_file_column_first_then_the_precedence_then_the_default() -> None:
    rows = [
        {"account": "col", "timezone": "america/denver", "zip": "10001", "phone1": TOLL_FREE},
        {"account": "zip", "zip": "60601", "phone1": NEW_YORK_PHONE},
        {"account": "none", "phone1": TOLL_FREE},
    ]
    assert zones_of(parse(rows)) == {
        "col": ("America/Denver", "column"),  # as the tz database spells it
        "zip": ("America/Chicago", "zip"),
        "none": (None, None),
    }
    phone_first = ZoneAssigner(("phone", "zip"), default="America/Phoenix")
    assert zones_of(parse(rows, phone_first)) == {
        "col": ("America/New_York", "zip"),  # the column is not in this precedence
        "zip": ("America/New_York", "phone"),
        "none": ("America/Phoenix", "default"),
    }


def test_a_bad_time_zone_in_the_file_is_rejected_with_its_reason() -> None:
    parsed = parse(
        [
            {"account": "good", "timezone": "Europe/London", "phone1": NEW_YORK_PHONE},
            {"account": "bad", "timezone": "Mars/Olympus_Mons", "phone1": NEW_YORK_PHONE},
            {"account": "no phone", "timezone": "Nowhere", "phone1": "12345"},
        ]
    )
    assert zones_of(parsed) == {"good": ("Europe/London", "column")}
    rejects = parsed.rejects
    assert list(zip(rejects["row"], rejects["account"], rejects["reason"], strict=True)) == [
        (3, "bad", "invalid_timezone"),
        (4, "no phone", "no_valid_phone"),  # the earlier rule decides
    ]


def test_the_phone_lookup_agrees_with_phonenumbers() -> None:
    """Every valid geographic number of a sample gets phonenumbers' own zones."""
    rng = random.Random(17)
    numbers = []
    for region in ("US", "CA", "GB", "DE", "RU", "BR", "AU", "MX", "IN", "FR", "JP"):
        example = phonenumbers.format_number(
            phonenumbers.example_number(region), phonenumbers.PhoneNumberFormat.E164
        )
        numbers += [example[:-6] + f"{rng.randrange(10**6):06d}" for _ in range(200)]
    numbers += [
        f"+1{a}{rng.randrange(200, 1000)}{rng.randrange(10**4):04d}" for a in range(200, 999)
    ]
    wanted: dict[str, str | None] = {}
    for number in numbers:
        parsed = phonenumbers.parse(number)
        kind = phonenumbers.number_type(parsed)
        if not phonenumbers.is_valid_number(
            parsed
        ) or not phone_timezone.is_number_type_geographical(kind, parsed.country_code):
            continue
        zones = phone_timezone.time_zones_for_number(parsed)
        if len(zones) > 1 and zones == phone_timezone._country_level_time_zones_for_number(parsed):
            zones = ()  # a country code alone tells no place: left to the next source
        wanted[number] = " ".join(sorted(set(zones) - {"Etc/Unknown"})) or None
    assert len(wanted) > 1000
    zone, _ = ZoneAssigner(("phone",)).assign({"phone1": pa.array(list(wanted))}, ["phone1"])
    assert dict(zip(wanted, zone.to_pylist(), strict=True)) == wanted


# --- parameters ----------------------------------------------------------------------------


def test_the_import_parameters_are_checked() -> None:
    base = {"list_name": "Leads", "source": "leads.csv"}
    options = ImportOptions.from_parameters(
        **base, timezone_precedence=["zip", "state"], default_timezone="us/eastern"
    )
    assert options.timezone_precedence == ("zip", "state")
    assert options.default_timezone == "US/Eastern"
    with pytest.raises(InvalidParameter, match="default_timezone 'Eastern' is not an IANA"):
        ImportOptions.from_parameters(**base, default_timezone="Eastern")
    with pytest.raises(InvalidParameter, match="names 'area_code', which is not one of"):
        check_zone_precedence(["zip", "area_code"])
    with pytest.raises(InvalidParameter, match="names a source twice"):
        check_zone_precedence(["zip", "zip"])
    with pytest.raises(InvalidParameter, match="must be a list of sources"):
        check_zone_precedence("zip")


def test_calling_hours_settings_are_checked() -> None:
    assert parse_window("09:30-20:00") == (
        datetime(1, 1, 1, 9, 30).time(),
        datetime(1, 1, 1, 20).time(),
    )
    assert parse_calling_days("Mon, tue,SAT") == frozenset({0, 1, 5})
    assert parse_calling_days("mon-fri") == frozenset(range(5))
    assert parse_calling_days("Monday-Wednesday,sun") == frozenset({0, 1, 2, 6})
    assert parse_calling_days("fri-mon") == frozenset({4, 5, 6, 0})  # through the weekend
    assert calling_days_text(parse_calling_days("sat,mon-tue")) == "mon,tue,sat"
    with pytest.raises(InvalidParameter, match="calling_days 'mon-funday'"):
        parse_calling_days("mon-funday")
    with pytest.raises(InvalidParameter, match="must start before it ends"):
        parse_window("21:00-08:00")
    with pytest.raises(InvalidParameter, match="calling_window '8 to 9'"):
        parse_window("8 to 9")
    with pytest.raises(InvalidParameter, match="calling_days 'someday'"):
        parse_calling_days("someday")
    with pytest.raises(InvalidParameter, match="unknown_timezone 'guess'"):
        CallingHours(unknown_timezone="guess")


# --- the calling-hours check ------------------------------------------------------------------

EVERY_DAY = frozenset(range(7))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "opens_utc"),
    [
        ("2026-03-07", "13:00"),  # EST, the day before the change
        ("2026-03-08", "12:00"),  # EDT from 02:00 that Sunday
        ("2026-10-31", "12:00"),  # EDT, the day before the change
        ("2026-11-01", "13:00"),  # EST from 02:00 that Sunday
    ],
)
def test_the_window_opens_at_local_eight_on_each_side_of_a_dst_change(
    day: str, opens_utc: str
) -> None:
    hours = CallingHours(days=EVERY_DAY)
    opens = utc(f"{day}T{opens_utc}")
    minute_before = utc(f"{day}T{int(opens_utc[:2]) - 1:02d}:59")
    assert hours.open_for("America/New_York", opens)
    assert not hours.open_for("America/New_York", minute_before)
    # Phoenix keeps MST all year: 08:00 there is 15:00 UTC on both sides.
    assert hours.open_for("America/Phoenix", utc(f"{day}T15:00"))
    assert not hours.open_for("America/Phoenix", utc(f"{day}T14:59"))


def test_a_record_in_two_zones_is_callable_only_when_both_are_open() -> None:
    hours = CallingHours()
    both = "America/Chicago America/New_York"
    monday_0830_eastern = utc("2026-03-09T12:30")  # 07:30 in Chicago
    monday_0930_eastern = utc("2026-03-09T13:30")
    assert hours.open_for("America/New_York", monday_0830_eastern)
    assert not hours.open_for(both, monday_0830_eastern)
    assert hours.open_for(both, monday_0930_eastern)
    # The end of the window: 21:00 in New York is 20:00 in Chicago.
    assert not hours.open_for(both, utc("2026-03-10T01:00"))
    assert hours.open_for(both, utc("2026-03-10T00:59"))


def test_days_holidays_and_records_without_a_zone() -> None:
    hours = CallingHours(holiday_region=("US", None), campaign_zone="America/Chicago")
    saturday_noon = utc("2026-03-07T17:00")
    assert not hours.open_for("America/New_York", saturday_noon)
    independence_day_observed = utc("2026-07-03T16:00")  # a Friday, noon in New York
    assert not hours.open_for("America/New_York", independence_day_observed)
    assert CallingHours().open_for("America/New_York", independence_day_observed)
    tuesday_0830_eastern = utc("2026-03-10T12:30")  # 07:30 in Chicago
    assert not hours.open_for(None, utc("2026-03-10T15:00"))  # skip: never
    by_campaign = CallingHours(unknown_timezone="campaign_zone", campaign_zone="America/Chicago")
    assert not by_campaign.open_for(None, tuesday_0830_eastern)
    assert by_campaign.open_for("", utc("2026-03-10T15:00"))
    assert not hours.open_for("Not/A_Zone", utc("2026-03-10T15:00"))
