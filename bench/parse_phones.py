"""Benchmark: phone normalisation and list parsing against named references.

Run: ``.venv/bin/python -m bench.parse_phones [--rows 1000000] [--runs 3]``

It prints medians of several runs, measured in the same run as their references:

- ``normalise_phones`` on a realistic US contact-centre mix (mostly national formats,
  some international, ~5% junk) against phonenumbers called once per row (measured on
  a 20k slice and scaled, since a full run takes about a minute);
- the parse of a generated list file (``read_table`` + ``RecordParser``) against
  ``pd.read_csv(engine="pyarrow", dtype=str, dtype_backend="pyarrow")`` alone.

The phone values come from ``tests/support/phone_samples.py`` (which the equality tests use).
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

from tests.support.phone_samples import mixed_phones


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
    from contact_center.parsing.phones import normalise_phone, normalise_phones

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
    from contact_center.parsing.files import read_table
    from contact_center.parsing.lists import RecordParser, validate_mapping

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
