"""Benchmark: phone normalisation and list parsing against named references.

Run: ``.venv/bin/python -m bench.parse_phones [--rows 1000000] [--runs 3]``

It prints medians of several runs, measured in the same run as their references:

- ``normalise_phones`` on a realistic US contact-centre mix (mostly national formats,
  some international, ~5% junk) against phonenumbers called once per row (measured on
  a 20k slice and scaled, since a full run takes about a minute);
- the parse of a generated list file (``read_table`` + ``RecordParser``) against
  ``pd.read_csv(engine="pyarrow", dtype=str, dtype_backend="pyarrow")`` alone.

``mixed_phones`` also feeds the equality test in ``tests/test_phones.py``.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import phonenumbers

# Example numbers of many countries, as phonenumbers knows them.
_TYPES = (
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
)
_SEPARATORS = ("", " ", "-", ".", "  ", " - ")


def _examples() -> list[tuple[str, str]]:
    """(region, national significant number) of every region's example numbers."""
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in _TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                out.append((region, phonenumbers.national_significant_number(number)))
    return out


def _group(digits: str, rng: random.Random) -> str:
    """Digits cut into groups of 2-4 with one separator style."""
    sep = rng.choice(_SEPARATORS)
    parts, i = [], 0
    while i < len(digits):
        size = rng.randint(2, 4)
        parts.append(digits[i : i + size])
        i += size
    return sep.join(parts)


def _mutate(digits: str, rng: random.Random) -> str:
    """Change, drop or add a digit now and then, so that validity varies."""
    roll = rng.random()
    if roll < 0.4 or not digits:
        return digits
    chars = list(digits)
    pos = rng.randrange(len(chars))
    if roll < 0.7:
        chars[pos] = rng.choice("0123456789")
    elif roll < 0.85:
        del chars[pos]
    else:
        chars.insert(pos, rng.choice("0123456789"))
    return "".join(chars)


def _area_codes() -> list[str]:
    """NANP area codes that phonenumbers accepts (US, Canada and the Caribbean)."""
    out = []
    for area in range(200, 1000):
        number = phonenumbers.parse(f"+1{area}2345678")
        if phonenumbers.is_valid_number(number):
            out.append(str(area))
    return out


def _nanp(rng: random.Random, areas: list[str], valid_share: float, odd: bool = True) -> str:
    """A NANP number in one of the formats people type (``odd``: also broken ones)."""
    if rng.random() < valid_share:
        area = rng.choice(areas)
    else:
        area = rng.choice(
            [f"{rng.randint(200, 999)}"] * 6
            + ["212", "800", "555", "011", "123", "911", "264", "876"]
        )
    exchange = rng.choice([f"{rng.randint(200, 999)}"] * 5 + ["555", "123", "011"][: 3 * odd])
    line = rng.choice([f"{rng.randint(0, 9999):04d}"] * 5 + [f"01{rng.randint(0, 99):02d}"])
    fmt = rng.randrange(12 if odd else 10)
    if fmt == 0:
        return f"{area}-{exchange}-{line}"
    if fmt == 1:
        return f"({area}) {exchange}-{line}"
    if fmt == 2:
        return f"{area}.{exchange}.{line}"
    if fmt == 3:
        return f"{area}{exchange}{line}"
    if fmt == 4:
        return f"1-{area}-{exchange}-{line}"
    if fmt == 5:
        return f"+1 {area} {exchange} {line}"
    if fmt == 6:
        return f"+1{area}{exchange}{line}"
    if fmt == 7:
        return f"1 ({area}) {exchange}-{line}"
    if fmt == 8:
        return f"1{area}{exchange}{line}"
    if fmt == 9:
        return f" {area} {exchange} {line} "
    if fmt == 10:
        return f"{exchange}-{line}"  # local, no area code
    return f"{area}{exchange}{line}.0"  # a spreadsheet's float


def _international(rng: random.Random, examples: list[tuple[str, str]]) -> str:
    region, nsn = rng.choice(examples)
    nsn = _mutate(nsn, rng)
    code = str(phonenumbers.country_code_for_region(region))
    fmt = rng.randrange(8)
    if fmt == 0:
        return f"+{code}{nsn}"
    if fmt == 1:
        return f"+{code} {_group(nsn, rng)}"
    if fmt == 2:
        return f"00{code} {_group(nsn, rng)}"
    if fmt == 3:
        return f"011 {code} {_group(nsn, rng)}"
    if fmt == 4:
        return f"+{code} (0){_group(nsn, rng)}"
    if fmt == 5:
        return f"0{_group(nsn, rng)}"  # national format with a trunk 0
    if fmt == 6:
        return _group(nsn, rng)  # national, no prefix
    return f"{code}{nsn}"  # a code without +


def _junk(rng: random.Random) -> str:
    return rng.choice(
        [
            "",
            " ",
            "N/A",
            "none",
            "0",
            "12",
            "+",
            "++1 212 736 5000",
            "+0 212 736 5000",
            "+999 1234567",
            "1-800-FLOWERS",
            "212-736-5000 x123",
            "212-736-5000 ext. 45",
            "(212) 736-5000#12",
            "212 736 5000, 2nd line",
            "tel:+1-212-736-5000",
            "２１２７３６５０００",
            "+44 20 7946 0958 / x 12",
            "call me",
            "212/736/5000",
            "+1 212 736 5000;ext=9",
            "".join(rng.choice("0123456789+-() .x#") for _ in range(rng.randint(1, 20))),
            "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 22))),
            "+" + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 19))),
        ]
    )


def mixed_phones(
    count: int,
    seed: int = 7,
    *,
    international: float = 0.25,
    junk: float = 0.07,
    valid_area: float = 0.3,
    odd_formats: bool = True,
) -> list[str]:
    """Phone values in mixed formats and countries, with edge cases and junk.

    Args:
        count: how many values.
        seed: the random seed (the same seed gives the same list).
        international: the share of numbers from other countries' examples.
        junk: the share of junk and edge cases (letters, extensions, blanks...).
        valid_area: the share of NANP numbers drawn with a real area code.
        odd_formats: include NANP numbers without an area code or written as floats.
    """
    rng = random.Random(seed)
    examples = _examples()
    areas = _area_codes()
    out = []
    for _ in range(count):
        roll = rng.random()
        if roll < junk:
            out.append(_junk(rng))
        elif roll < junk + international:
            out.append(_international(rng, examples))
        else:
            out.append(_nanp(rng, areas, valid_share=valid_area, odd=odd_formats))
    return out


def median_seconds(run: Callable[[], object], runs: int) -> tuple[float, float]:
    """The median wall time and the median CPU time of this process, over ``runs`` calls.

    The CPU time is printed too because the machine may be shared: it shows the work
    done even when the wall time is stretched by other processes.
    """
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus)


def _line(label: str, measured: tuple[float, float], reference: tuple[float, float]) -> str:
    wall, cpu = measured
    return (
        f"  {label:32s} wall {wall:7.2f} s  ratio {wall / reference[0]:6.2f}   "
        f"cpu {cpu:7.2f} s  ratio {cpu / reference[1]:6.2f}"
    )


def bench_phones(rows: int, runs: int) -> None:
    """normalise_phones on ``rows`` values vs phonenumbers per row."""
    from contact_center.phones import normalise_phone, normalise_phones

    values = pd.Series(
        mixed_phones(rows, seed=11, international=0.03, junk=0.03, valid_area=0.9), dtype="str"
    )
    normalise_phones(values.iloc[:1000], "US")  # load the metadata once
    fast = median_seconds(lambda: normalise_phones(values, "US"), runs)
    sample = values.iloc[:20_000].tolist()
    wall, cpu = median_seconds(lambda: [normalise_phone(v, "US") for v in sample], 1)
    reference = (wall * rows / len(sample), cpu * rows / len(sample))
    print(f"phones: {rows:,} values ({values.nunique():,} distinct), medians of {runs} runs")
    print(_line("phonenumbers per row (scaled)", reference, reference))
    print(_line("normalise_phones", fast, reference))
    print(f"  rate: {rows / fast[0]:,.0f}/s wall, {rows / fast[1]:,.0f}/s cpu")


def write_list_file(path: Path, rows: int, seed: int = 3) -> None:
    """A calling-list CSV (~131 bytes a row): typical columns, mixed phones, ~5% bad rows."""
    rng = random.Random(seed)
    phones = mixed_phones(
        rows * 2, seed=seed, international=0.03, junk=0.01, valid_area=0.97, odd_formats=False
    )
    first = ["Ana", "José", "Li", "Sam", "Renée", "Omar", "Kim", "Jo"]
    last = ["Smith", "García", "O'Neil", "Nguyen", "Müller", "Khan", "Brown"]
    states = ["NY", "CA", "TX", "FL", "MA", "WA"]
    zones = ["America/New_York", "America/Chicago", "America/Los_Angeles"]
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["account", "phone1", "phone2", "first_name", "last_name", "zip", "state",
             "timezone", "priority", "call_at", "segment", "email", "note"]
        )  # fmt: skip
        for i in range(rows):
            roll = rng.random()
            if roll < 0.01:
                account = ""  # missing_key
            elif roll < 0.03:
                account = f"A{rng.randrange(rows):08d}"  # most likely a duplicate_key
            else:
                account = f"A{i:08d}"
            phone1 = "n/a" if 0.03 <= roll < 0.05 else phones[2 * i]  # no_valid_phone, often
            name = rng.choice(first)
            out.writerow(
                [account, phone1, phones[2 * i + 1] if roll < 0.6 else "", name,
                 rng.choice(last), f"{rng.randint(1000, 99999):05d}", rng.choice(states),
                 rng.choice(zones), rng.randint(1, 9), f"2026-05-{rng.randint(1, 28):02d} 09:00",
                 f"seg{rng.randint(1, 20)}", f"{name.lower()}{i}@example.com",
                 "called, no answer" if i % 17 == 0 else "ok"]
            )  # fmt: skip


def bench_parse(rows: int, runs: int) -> None:
    """read_table + RecordParser vs pd.read_csv(engine="pyarrow") on the same file."""
    from contact_center.files import read_table
    from contact_center.lists import RecordParser, validate_mapping

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.csv"
        write_list_file(path, rows)
        size = path.stat().st_size

        def reference() -> None:
            pd.read_csv(path, engine="pyarrow", dtype=str, dtype_backend="pyarrow")

        def read_only() -> None:
            for _ in read_table(path, name=path.name):
                pass

        def parse() -> None:
            reader = read_table(path, name=path.name)
            mapping = validate_mapping(None, reader.header, "account", file=path.name)
            parser = RecordParser(mapping, "account", "US", path.name)
            for chunk in reader:
                parser.parse(chunk)

        parse()  # load the phone metadata once
        ref = median_seconds(reference, runs)
        read = median_seconds(read_only, runs)
        full = median_seconds(parse, runs)
        print(f"parse: {rows:,} rows, {size / 1e6:.0f} MB CSV, medians of {runs} runs")
        print(_line("pd.read_csv(engine=pyarrow)", ref, ref))
        print(_line("read_table (chunks only)", read, ref))
        print(_line("read_table + RecordParser", full, ref))


def main() -> None:
    """Parse the options and run both benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["phones", "parse"], default=None)
    args = parser.parse_args()
    if args.only in (None, "phones"):
        bench_phones(args.rows, args.runs)
    if args.only in (None, "parse"):
        bench_parse(args.rows, args.runs)


if __name__ == "__main__":
    main()
