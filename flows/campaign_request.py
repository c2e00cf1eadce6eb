"""The ``campaign-trigger`` flow's request: its parameters checked, the dialler's token.

The checks here are the ones the flow's parameter types cannot express (a campaign name,
a webhook URL, skip dates, a holiday region); the token is read from its ``Secret`` block
only when it is used, so it never becomes a parameter, a log line or a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from prefect.blocks.system import Secret
from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound

from contact_center.exceptions import InvalidParameter, ObjectNotFound
from contact_center.parsing.names import check_name
from contact_center.storage.campaign_rules import parse_holiday_region, parse_skip_dates

__all__ = ["TriggerRequest", "display_url", "load_token", "validate_request"]


@dataclass(frozen=True)
class TriggerRequest:
    """The flow's parameters, validated.

    Attributes:
        campaign: the campaign's name.
        step: ``start`` or ``stop``.
        source: ``schedule``, ``manual`` or ``api``.
        allow_empty: start even with nothing to dial.
        skip_dates: dates (in the campaign's time zone) on which the run changes nothing.
        holiday_region: ``(country, subdivision)`` whose public holidays are skipped.
        notify_url: the dialler's webhook, if any.
        notify_token_block: the name of a ``Secret`` block with the webhook's bearer token.
    """

    campaign: str
    step: str
    source: str
    allow_empty: bool
    skip_dates: frozenset[Any]
    holiday_region: tuple[str, str | None] | None
    notify_url: str | None
    notify_token_block: str | None


def display_url(url: str) -> str:
    """``url`` without user info or query, for messages and logs (they may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _validate_notify_url(url: str | None) -> str | None:
    if url is None or not url.strip():
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter(
            f"notify_url must be an http:// or https:// URL, not {display_url(url)!r}"
        )
    return url.strip()


def validate_request(
    *,
    campaign: str,
    step: str,
    source: str,
    allow_empty: bool,
    skip_dates: list[str] | None,
    holidays: str | None,
    notify_url: str | None,
    notify_token_block: str | None,
) -> TriggerRequest:
    """The flow's parameters after the checks that their types cannot express.

    Raises:
        InvalidParameter: a parameter is not valid; the message names it.
    """
    check_name("campaign", campaign)
    url = _validate_notify_url(notify_url)
    if notify_token_block and url is None:
        raise InvalidParameter("notify_token_block is set but notify_url is not")
    return TriggerRequest(
        campaign=campaign,
        step=step,
        source=source,
        allow_empty=allow_empty,
        skip_dates=parse_skip_dates(skip_dates),
        holiday_region=parse_holiday_region(holidays),
        notify_url=url,
        notify_token_block=notify_token_block or None,
    )


def load_token(block_name: str) -> str:
    """The bearer token held by the ``Secret`` block ``block_name`` (never logged)."""
    try:
        value = Secret.load(block_name).get()  # type: ignore[union-attr]
    except (ValueError, PrefectObjectNotFound) as exc:
        raise ObjectNotFound(f"no Secret block named {block_name!r} (notify_token_block)") from exc
    if not isinstance(value, str) or not value:
        raise InvalidParameter(f"the Secret block {block_name!r} must hold a non-empty string")
    return value
