"""Phone numbers to E.164, vectorised, with the phonenumbers library as the authority.

:func:`normalise_phones` returns, for every value, exactly what
``phonenumbers.parse(value, default_country)`` followed by ``is_valid_number`` and
``format_number(..., E164)`` returns (a parse error or an invalid number gives NA).
:func:`normalise_phone` is that reference, one value at a time, and too slow for a
whole list. So:

1. the common shape (an optional ``+``, ASCII digits and the separators
   ``space ( ) - .``) is decided over whole arrays by a transcription of the
   library's own parsing and validation, with its own metadata patterns
   (the private ``_fast`` module, over ``_metadata``, ``_match`` and ``_automata``);
2. a value with fewer than two ASCII digits cannot be a number: NA at once;
3. everything else (letters, extensions, non-ASCII digits, a country whose metadata
   has a national-prefix transform rule) goes to phonenumbers itself, once per
   unique value.

``tests/test_phones.py`` pins them together: the fast path equals phonenumbers on a
large generated sample of mixed formats and countries, and for several default
countries; and each automaton equals ``re`` for every pattern of the metadata.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa

# The private pieces are re-exported (``as``) for tests/test_phones.py, which checks
# them one by one against phonenumbers and re.
from contact_center.parsing.phones._automata import _Automaton as _Automaton
from contact_center.parsing.phones._automata import _automaton as _automaton
from contact_center.parsing.phones._fast import _is_valid as _is_valid
from contact_center.parsing.phones._fast import _is_valid_one as _is_valid_one
from contact_center.parsing.phones._fast import _normalise
from contact_center.parsing.phones._fast import _Shape as _Shape
from contact_center.parsing.phones._match import _prefix_match as _prefix_match
from contact_center.parsing.phones._metadata import _country_codes as _country_codes
from contact_center.parsing.phones._metadata import _validity as _validity
from contact_center.parsing.phones.reference import check_default_country, normalise_phone
from contact_center.settings import DEFAULT_COUNTRY

__all__ = [
    "check_default_country",
    "normalise_phone",
    "normalise_phone_array",
    "normalise_phones",
]

_STR = pd.StringDtype("pyarrow", na_value=np.nan)

# A list repeats few distinct values that the fast path leaves (junk, extensions).
_normalise_phone_cached = lru_cache(maxsize=1 << 16)(normalise_phone)


def normalise_phones(values: pd.Series, default_country: str = DEFAULT_COUNTRY) -> pd.Series:
    """Normalise phone numbers to E.164, exactly as phonenumbers would, vectorised.

    Args:
        values: phone numbers as written (text; NA allowed).
        default_country: the region for national numbers; case does not matter.

    Returns:
        A ``str`` Series on the same index: the E.164 number, or NA where
        ``phonenumbers.parse(value, default_country.upper())`` fails or the number is
        not valid.

    Raises:
        InvalidParameter: ``default_country`` is not a known region.
    """
    array = pa.array(values, type=pa.string(), from_pandas=True)
    result = normalise_phone_array(array, default_country)
    return pd.Series(
        result.to_pandas(types_mapper=lambda _: _STR).array,
        index=values.index,
        name=values.name,
    )


def normalise_phone_array(
    values: pa.Array | pa.ChunkedArray, default_country: str = DEFAULT_COUNTRY
) -> pa.Array:
    """:func:`normalise_phones` for an Arrow string array: E.164 text or null per value.

    Raises:
        InvalidParameter: ``default_country`` is not a known region.
    """
    region = check_default_country(default_country)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.string():
        values = values.cast(pa.string())
    # The reference is looked up here, at each call, so that it can be watched.
    return _normalise(values, region, _normalise_phone_cached)
