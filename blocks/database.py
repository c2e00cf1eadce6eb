"""The contact-centre database block.

prefect-sqlalchemy's ``SqlAlchemyConnector`` keeps one engine per block instance and
wraps fetch/execute calls; our loads need the raw psycopg ``COPY`` and SQLite's
``executemany`` on a cached engine, so the block only holds the URL and the
password and hands out an engine from :mod:`contact_center.storage.db`.
"""

from __future__ import annotations

import sqlalchemy as sa
from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator
from sqlalchemy.engine import Engine, make_url

from contact_center.storage.db import create_db_engine, ensure_schema, safe_url

__all__ = ["ContactCenterDatabase"]


class ContactCenterDatabase(Block):
    """Where the contact centre's lists, campaigns and results live.

    Example:
        ```python
        from blocks import ContactCenterDatabase
        ContactCenterDatabase(
            url="postgresql+psycopg://cctasks@db.example.com/cc", password="...",
        ).save("contact-center")
        database = ContactCenterDatabase.load("BLOCK_NAME")
        engine = database.get_engine()
        ```
    """

    _block_type_name = "Contact Center Database"
    _block_type_slug = "contact-center-database"
    _description = "SQLAlchemy URL (SQLite or PostgreSQL) of the contact-centre database."

    # A refused value is not quoted in the validation error: it may hold a password.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str = Field(
        description=(
            "SQLAlchemy URL without the password, e.g. sqlite:///.cctasks/contact-center.db "
            "or postgresql+psycopg://user@host:5432/db."
        )
    )
    password: SecretStr | None = Field(
        default=None, description="Database password, kept apart from the URL."
    )

    @field_validator("url")
    @classmethod
    def _url_without_password(cls, value: str) -> str:
        """Refuse a URL that carries a password: the URL is stored in plain text."""
        try:
            password = make_url(value).password
        except sa.exc.ArgumentError:
            return value  # not a URL at all: create_url says so when it is used
        if password is not None:
            raise ValueError(
                "the url must not carry the password (the block stores its url in plain "
                "text, and Prefect's events copy it); remove it from the url and put it in "
                "the block's `password` field, which is kept secret"
            )
        return value

    def create_url(self) -> str:
        """The full URL, with the password put in (unwrapped only here)."""
        url = make_url(self.url)
        if self.password is not None:
            url = url.set(password=self.password.get_secret_value())
        return url.render_as_string(hide_password=False)

    @property
    def display_url(self) -> str:
        """The URL for messages, without the password."""
        return safe_url(self.url)

    def get_engine(self) -> Engine:
        """A cached, migrated engine for this database."""
        return ensure_schema(create_db_engine(self.create_url()))
