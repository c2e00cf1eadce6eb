"""The list benchmarks' file: typical columns, mixed phone formats, about 5% bad rows.

:func:`generate_list` writes it (seeded, so every tree measures the same file);
:data:`MAPPING` maps its columns to the list's fields.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "MAPPING", "generate_list"]

COLUMNS = [
    "Account",
    "First Name",
    "Last Name",
    "Phone",
    "Mobile",
    "ZIP",
    "State",
    "Priority",
    "Email",
    "Address",
    "City",
    "Plan",
    "Notes",
]
MAPPING = {
    "Account": "account",
    "First Name": "first_name",
    "Last Name": "last_name",
    "Phone": "phone1",
    "Mobile": "phone2",
    "ZIP": "zip",
    "State": "state",
    "Priority": "priority",
}  # Email, Address, City, Plan and Notes are custom fields

# --- the list file ---------------------------------------------------------------------

_FIRST = ["Ann", "José", "Zoë", "Mike", "Priya", "Chen", "Olga", "Sam", "Fatima", "Lars"]
_LAST = ["Smith", "Muñoz", "O'Brien", "Nguyen", "Kowalski", "Okafor", "Dubois", "Lee"]
_STATES = ["NY", "CA", "TX", "FL", "IL", "MA", "WA", "GA", "CO", "AZ"]
_PLANS = ["gold", "silver", "bronze", ""]
_NOTES = ["", "", "", "call after 5pm", 'said "call later", maybe', "spanish, please"]
_JUNK = ["12345", "n/a", "555-0100", "000", "call me"]
_STREETS = ["Main St", "Oak Avenue", "Maple Drive", "Elm Street, Apt 4", "Broadway", "Sunset Blvd"]
_CITIES = ["New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "San José", "Boston"]


def _area_codes() -> np.ndarray:
    import phonenumbers

    areas = [
        a
        for a in range(200, 1000)
        if phonenumbers.is_valid_number(phonenumbers.parse(f"+1{a}2345678"))
    ]
    return np.array(areas)


def _phones(rng: np.random.Generator, n: int, areas: np.ndarray) -> list[str]:
    """NANP numbers in the formats people type."""
    area = rng.choice(areas, n)
    exchange = rng.integers(200, 1000, n)
    line = rng.integers(0, 10000, n)
    style = rng.integers(0, 8, n)
    formats = [
        "{a}{e}{l:04d}",
        "({a}) {e}-{l:04d}",
        "{a}-{e}-{l:04d}",
        "{a}.{e}.{l:04d}",
        "+1 {a} {e} {l:04d}",
        "1-{a}-{e}-{l:04d}",
        "+1{a}{e}{l:04d}",
        " {a} {e} {l:04d} ",
    ]
    return [
        formats[s].format(a=a, e=e, l=x)
        for s, a, e, x in zip(
            style.tolist(), area.tolist(), exchange.tolist(), line.tolist(), strict=True
        )
    ]


def generate_list(path: Path, rows: int, seed: int = 2026) -> dict[str, int]:
    """Write a list file of ``rows`` data rows; return the bad rows made, by kind.

    About 1.5% of rows have a blank account, 1.5% repeat an earlier account, and 2%
    have only junk phones; a few more numbers fail phonenumbers' validity.
    """
    rng = np.random.default_rng(seed)
    areas = _area_codes()
    accounts = np.array([f"AC{i:08d}" for i in range(rows)], dtype=object)
    roll = rng.random(rows)
    blank = roll < 0.015
    repeat = (roll >= 0.015) & (roll < 0.03) & (np.arange(rows) > 0)
    junk = (roll >= 0.03) & (roll < 0.05)
    repeat_idx = np.flatnonzero(repeat)
    accounts[repeat_idx] = accounts[(rng.random(len(repeat_idx)) * repeat_idx).astype(int)]
    accounts[blank] = ""
    phone = np.array(_phones(rng, rows, areas), dtype=object)
    mobile = np.array(_phones(rng, rows, areas), dtype=object)
    mobile[rng.random(rows) < 0.6] = ""
    phone[junk] = rng.choice(_JUNK, int(junk.sum()))
    mobile[junk] = ""
    first = rng.choice(_FIRST, rows)
    last = rng.choice(_LAST, rows)
    frame = pd.DataFrame(
        {
            "Account": accounts,
            "First Name": first,
            "Last Name": last,
            "Phone": phone,
            "Mobile": mobile,
            "ZIP": [f"{z:05d}" for z in rng.integers(500, 99950, rows).tolist()],
            "State": rng.choice(_STATES, rows),
            "Priority": rng.integers(1, 6, rows).astype(str),
            "Email": [
                f"{f.lower()}.{x.lower()}{i}@example.com"
                for i, (f, x) in enumerate(zip(first.tolist(), last.tolist(), strict=True))
            ],
            "Address": [
                f"{n} {street}"
                for n, street in zip(
                    rng.integers(1, 9999, rows).tolist(),
                    rng.choice(_STREETS, rows).tolist(),
                    strict=True,
                )
            ],
            "City": rng.choice(_CITIES, rows),
            "Plan": rng.choice(_PLANS, rows),
            "Notes": rng.choice(_NOTES, rows),
        },
        columns=COLUMNS,
    )
    frame.to_csv(path, index=False)
    return {"blank": int(blank.sum()), "repeat": int(repeat.sum()), "junk": int(junk.sum())}


# --- the references ----------------------------------------------------------------------
