"""The flows' parameter types, and the few checks that a type cannot express.

The five flows type their parameters with these aliases. Prefect builds each
deployment's parameter schema from the flow's signature, so a choice becomes an
``enum`` (a drop-down in the Prefect UI) and a range becomes ``minimum``/``maximum``.
With ``enforce_parameter_schema`` (``prefect.yaml``), a bad value is refused before a
run is created: by ``cctasks run``, by ``prefect deployment run`` and by the UI or
API. A flow called directly refuses it too (Prefect validates the call with pydantic
and raises ``ParameterTypeError`` naming the parameter).

What JSON schema cannot say is checked here, at the start of a run and before any
I/O: rules across parameters (``widths`` and ``columns``, ``notify_token_block``
without ``notify_url``) and values that need a lookup (a text encoding, a phone
region). Names are checked by :mod:`contact_center.parsing.names`, locations by
:mod:`contact_center.parsing.locations`, and path confinement by ``flows.common.confine``.
"""

from __future__ import annotations

import codecs
from collections import Counter
from typing import Annotated, Literal, get_args

from pydantic import Field, StringConstraints

from contact_center.exceptions import InvalidParameter

__all__ = [
    "AfterImport",
    "CampaignStep",
    "Days",
    "Delimiter",
    "ExclusionPolicy",
    "ExclusionStep",
    "ExportFormat",
    "FileFormat",
    "Ratio",
    "RecordField",
    "ReportFormat",
    "RowCount",
    "StrictBool",
    "Text",
    "TriggerSource",
    "UpdatePolicy",
    "Width",
    "check_default_country",
    "check_encoding",
    "check_mapping",
    "check_widths_and_columns",
    "choices",
]

#: How a calling-list import applies its file.
UpdatePolicy = Literal["append", "update", "replace"]
#: How an exclusion import applies its file.
ExclusionPolicy = Literal["add", "replace"]
ExclusionStep = Literal["import", "reset"]
CampaignStep = Literal["start", "stop"]
#: Who asked for a campaign step.
TriggerSource = Literal["schedule", "manual", "api"]
ExportFormat = Literal["simple", "detailed"]
ReportFormat = Literal["csv", "xlsx", "html", "pdf"]
#: The formats the file reader opens (``auto`` detects one of the others).
FileFormat = Literal["auto", "csv", "xlsx", "fixed"]
#: Exactly the delimiters the file reader accepts (``contact_center.parsing.detection``), by
#: character or by name.
Delimiter = Literal[",", ";", "\t", "|", "comma", "semicolon", "tab", "\\t", "pipe"]
#: The typed fields of a list record (``contact_center.parsing.record_fields.RECORD_FIELDS``).
RecordField = Literal[
    "account",
    "phone1",
    "phone2",
    "phone3",
    "phone4",
    "phone5",
    "phone6",
    "phone7",
    "phone8",
    "phone9",
    "phone10",
    "first_name",
    "last_name",
    "zip",
    "state",
    "timezone",
    "priority",
    "call_at",
]
#: ``keep``, ``delete`` or ``archive:<folder>`` (the folder is confined to the
#: source's side by ``flows.common.confine``, which also refuses ``..``).
AfterImport = Annotated[str, StringConstraints(pattern=r"^(keep|delete|archive:.+)$")]
#: A share of something, from 0 to 1 (``0.05`` is 5 %).
Ratio = Annotated[float, Field(ge=0, le=1, strict=True)]
#: A count of rows, 0 or more.
RowCount = Annotated[int, Field(ge=0, strict=True)]
#: A number of days, 1 or more.
Days = Annotated[int, Field(ge=1, strict=True)]
#: ``true`` or ``false`` only: pydantic would otherwise read ``"yes"`` or ``1`` as true.
StrictBool = Annotated[bool, Field(strict=True)]
#: A fixed-width column's width, in characters.
Width = Annotated[int, Field(gt=0, strict=True)]
#: A non-blank string (a column name, a sheet).
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def choices(kind: object) -> tuple[str, ...]:
    """The values a ``Literal`` type allows, e.g. ``choices(UpdatePolicy)``."""
    return tuple(str(value) for value in get_args(kind))


def check_encoding(encoding: str | None) -> str | None:
    """A text encoding Python knows, or None (detect it).

    Raises:
        InvalidParameter: an unknown encoding.
    """
    if encoding is None:
        return None
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidParameter(f"encoding {encoding!r} is not known") from None
    return encoding


def check_default_country(country: str) -> str:
    """The phone region of national numbers, upper-cased.

    Raises:
        InvalidParameter: not a region that ``phonenumbers`` knows.
    """
    import phonenumbers

    if country.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidParameter(
            f"default_country {country!r} is not a two-letter region code (e.g. US, GB)"
        )
    return country.upper()


def check_widths_and_columns(widths: list[int] | None, columns: list[str] | None) -> None:
    """A fixed-width file's ``columns`` name each of its ``widths``.

    Raises:
        InvalidParameter: both given, of different lengths.
    """
    if widths is not None and columns is not None and len(widths) != len(columns):
        raise InvalidParameter(f"widths has {len(widths)} entries but columns has {len(columns)}")


def check_mapping(mapping: dict[str, str] | None) -> dict[str, str] | None:
    """A mapping (file column -> list field) that maps one column to each field at most.

    Raises:
        InvalidParameter: two columns map to the same field.
    """
    if mapping is None:
        return None
    repeated = [f for f, n in Counter(mapping.values()).items() if n > 1]
    if repeated:
        raise InvalidParameter(f"mapping maps more than one column to the field {repeated[0]!r}")
    return dict(mapping)
