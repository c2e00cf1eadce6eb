"""The contact-centre database block.

prefect-sqlalchemy's ``SqlAlchemyConnector`` keeps one engine per block instance and
wraps fetch/execute calls; our loads need the raw psycopg ``COPY`` and SQLite's
``executemany`` on a cached engine, so the block only holds the URL and the
password and hands out an engine from :mod:`contact_center.db`.
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr
from sqlalchemy.engine import Engine, make_url

from contact_center.db import create_db_engine, ensure_schema, safe_url

__all__ = ["ContactCenterDatabase"]


class ContactCenterDatabase(Block):
    """Where the contact centre's lists, campaigns and results live.

    Example:
        ```python
        ContactCenterDatabase(
            url="postgresql+psycopg://cctasks@db.example.com/cc", password="...",
        ).save("contact-center")
        ```
    """

    _block_type_name = "Contact Center Database"
    _block_type_slug = "contact-center-database"
    _description = "SQLAlchemy URL (SQLite or PostgreSQL) of the contact-centre database."

    url: str = Field(
        description=(
            "SQLAlchemy URL without the password, e.g. sqlite:///.cctasks/contact-center.db "
            "or postgresql+psycopg://user@host:5432/db."
        )
    )
    password: SecretStr | None = Field(
        default=None, description="Database password, kept apart from the URL."
    )

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
