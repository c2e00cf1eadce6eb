"""Generated phone values for the equality tests and the benchmark.

``mixed_phones`` draws mixed formats and countries, with edge cases and junk, from a
seed: NANP numbers as people type them (real and made-up area codes), every region's
example numbers from phonenumbers (mutated, in national, international, ``00``/``011``
and ``(0)`` forms) and junk (letters, extensions, blanks, full-width digits...).
"""

from __future__ import annotations

import random

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
