"""The contact-centre data model (SQLAlchemy 2).

The schema is created and changed only by the Alembic migrations in
``contact_center/storage/migrations``; keep the two in step.

Times are stored in UTC. :class:`UTCDateTime` makes that hold on SQLite too,
which has no time-zone type: aware datetimes are converted to UTC on the way in,
and naive values that come back are marked UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contact_center.parsing.record_fields import PHONE_FIELDS, RECORD_FIELDS

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT primary keys autoincrement on SQLite only as INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class JsonText(TypeDecorator[Any]):
    """A JSON document stored as its text (``text`` on PostgreSQL, ``TEXT`` on SQLite).

    List records are written in bulk far more often than their custom fields are
    queried, and the parser writes each document itself, so the database need not
    check or decompose it: ``jsonb`` made a 1M-row list COPY about 20% slower and
    ``json``'s check about 10% more (migrations 0002 and 0003). Python sees the
    document (a dict); SQL that looks inside casts it to ``JSON`` first.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        """Write a document the way the list parser spells it (compact, UTF-8)."""
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        """Read the text back as the document."""
        return None if value is None else json.loads(value)


#: Keys that are loaded in bulk and matched exactly (record keys, exclusion keys): on
#: PostgreSQL they use the "C" collation, so that their unique indexes compare bytes
#: instead of calling the locale's collation (about 10% faster bulk loads). Sorting by
#: key is then by code point, which is what a key's order means anyway.
KeyText = String(200).with_variant(String(200, collation="C"), "postgresql")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


class Base(DeclarativeBase):
    """The declarative base of every contact-centre table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --- campaigns -----------------------------------------------------------------------


class Campaign(Base):
    """An outbound campaign: its state, time zone and linked lists."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(20), default="stopped")  # running | stopped
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Calling hours in each record's local time (contact_center.calling_hours).
    calling_window: Mapped[str] = mapped_column(
        String(20), default="08:00-21:00", server_default="08:00-21:00"
    )
    calling_days: Mapped[str] = mapped_column(
        String(40), default="mon,tue,wed,thu,fri", server_default="mon,tue,wed,thu,fri"
    )
    calling_holidays: Mapped[str | None] = mapped_column(String(20), nullable=True)
    unknown_timezone: Mapped[str] = mapped_column(
        String(20), default="skip", server_default="skip"
    )  # skip | campaign_zone
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class CampaignList(Base):
    """A calling list linked to a campaign, enabled or not."""

    __tablename__ = "campaign_lists"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(
        ForeignKey("calling_lists.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class CampaignExclusionList(Base):
    """An exclusion (Do-Not-Call) list that applies to a campaign's lists."""

    __tablename__ = "campaign_exclusion_lists"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    exclusion_list_id: Mapped[int] = mapped_column(
        ForeignKey("exclusion_lists.id", ondelete="CASCADE"), primary_key=True
    )


class CampaignEvent(Base):
    """The audit of a campaign's starts and stops."""

    __tablename__ = "campaign_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(20))  # start | stop
    source: Mapped[str] = mapped_column(String(20))  # schedule | manual | api
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result: Mapped[str] = mapped_column(String(100))  # e.g. started, already running
    notified: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


# --- calling lists -------------------------------------------------------------------


class CallingList(Base):
    """A calling list: the object of the calling-list import."""

    __tablename__ = "calling_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    key_field: Mapped[str] = mapped_column(String(40), default="account")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ListRecord(Base):
    """A record of a calling list. Phones are E.164; other values are text as written."""

    __tablename__ = "list_records"
    __table_args__ = (UniqueConstraint("list_id", "record_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No FOREIGN KEY on purpose: PostgreSQL checks one per inserted row, which made a
    # 1M-row COPY about 2x slower. Writers take the id from the list's row (the list
    # import locks it in the same transaction, contact_center/storage/list_load.py); whoever
    # deletes a list deletes its records too.
    list_id: Mapped[int] = mapped_column(Integer)
    record_key: Mapped[str] = mapped_column(KeyText)
    account: Mapped[str | None] = mapped_column(String(200), nullable=True)
    phone1: Mapped[str | None] = mapped_column(String(20), nullable=True)
    phone2: Mapped[str | None] = mapped_column(String(20), nullable=True)
    phone3: Mapped[str | None] = mapped_column(String(20), nullable=True)
    phone4: Mapped[str | None] = mapped_column(String(20), nullable=True)
    phone5: Mapped[str | None] = mapped_column(String(20), nullable=True)
    phone6: Mapped[str | None] = mapped_column(String(20), nullable=True)
    phone7: Mapped[str | None] = mapped_column(String(20), nullable=True)
    phone8: Mapped[str | None] = mapped_column(String(20), nullable=True)
    phone9: Mapped[str | None] = mapped_column(String(20), nullable=True)
    phone10: Mapped[str | None] = mapped_column(String(20), nullable=True)
    first_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    zip: Mapped[str | None] = mapped_column(String(40), nullable=True)
    state: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # One IANA zone, or several separated by a space (contact_center.record_zones).
    timezone: Mapped[str | None] = mapped_column(Text, nullable=True)
    timezone_source: Mapped[str | None] = mapped_column(String(10), nullable=True)
    priority: Mapped[str | None] = mapped_column(String(40), nullable=True)
    call_at: Mapped[str | None] = mapped_column(String(64), nullable=True)
    custom_fields: Mapped[Any] = mapped_column(JsonText(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    import_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # On PostgreSQL it defaults to now() (the transaction's start; migration 0002), so
    # that a bulk COPY leaves it out; writers elsewhere set it.
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ListImport(Base):
    """One run of a file into a calling list: the file, its checksum and the counts."""

    __tablename__ = "list_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("calling_lists.id", ondelete="CASCADE"))
    file_name: Mapped[str] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20))  # completed | skipped
    update_policy: Mapped[str | None] = mapped_column(String(20), nullable=True)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    loaded: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    excluded: Mapped[int] = mapped_column(Integer, default=0)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


Index("ix_list_imports_list_sha", ListImport.list_id, ListImport.sha256)


# --- exclusions (Do-Not-Call lists of the Record Exclusion type) ---------------------


class ExclusionList(Base):
    """A Do-Not-Call list of the Record Exclusion type."""

    __tablename__ = "exclusion_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    match_field: Mapped[str] = mapped_column(String(40), default="account")
    case_sensitive: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Exclusion(Base):
    """A key value that must not be dialled until it expires."""

    __tablename__ = "exclusions"
    __table_args__ = (UniqueConstraint("exclusion_list_id", "key_value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exclusion_list_id: Mapped[int] = mapped_column(
        ForeignKey("exclusion_lists.id", ondelete="CASCADE")
    )
    key_value: Mapped[str] = mapped_column(KeyText)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ExclusionImport(Base):
    """One import (or daily reset) of an exclusion list, with its counts."""

    __tablename__ = "exclusion_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exclusion_list_id: Mapped[int] = mapped_column(
        ForeignKey("exclusion_lists.id", ondelete="CASCADE")
    )
    step: Mapped[str] = mapped_column(String(20))  # import | reset
    file_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    update_policy: Mapped[str | None] = mapped_column(String(20), nullable=True)
    keys_read: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    renewed: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# --- campaign results ----------------------------------------------------------------


class CallAttempt(Base):
    """A campaign result: one call attempt (or one not dialled, e.g. excluded)."""

    __tablename__ = "call_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    list_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    record_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    record_key: Mapped[str | None] = mapped_column(KeyText, nullable=True)
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    is_call_attempt: Mapped[bool] = mapped_column(Boolean, default=True)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)
    record_disposition: Mapped[str | None] = mapped_column(String(100), nullable=True)
    record_disposition_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    call_disposition: Mapped[str | None] = mapped_column(String(100), nullable=True)
    call_disposition_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    out_of_quota: Mapped[bool] = mapped_column(Boolean, default=False)
    call_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    global_interaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action_applied: Mapped[str | None] = mapped_column(String(100), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(100), nullable=True)


Index("ix_call_attempts_campaign_recorded", CallAttempt.campaign_id, CallAttempt.recorded_at)
Index("ix_call_attempts_campaign_attempted", CallAttempt.campaign_id, CallAttempt.attempted_at)


class ExportWatermark(Base):
    """Up to when a campaign's results were exported to a destination."""

    __tablename__ = "export_watermarks"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    destination: Mapped[str] = mapped_column(String(500), primary_key=True)
    watermark: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ResultsExport(Base):
    """One delivered export of a campaign's results."""

    __tablename__ = "results_exports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    destination: Mapped[str] = mapped_column(String(500))
    file_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    format: Mapped[str] = mapped_column(String(20))
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    exported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # pending: chosen and being delivered (a rerun resumes its window); delivered: done.
    status: Mapped[str] = mapped_column(String(20), default="delivered", server_default="delivered")


__all__ = [
    "Base",
    "CallAttempt",
    "CallingList",
    "Campaign",
    "CampaignEvent",
    "CampaignExclusionList",
    "CampaignList",
    "Exclusion",
    "ExclusionImport",
    "ExclusionList",
    "ExportWatermark",
    "ListImport",
    "ListRecord",
    "PHONE_FIELDS",
    "RECORD_FIELDS",
    "ResultsExport",
    "UTCDateTime",
    "utcnow",
]
