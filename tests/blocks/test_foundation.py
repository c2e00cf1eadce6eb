"""The foundation: locations, the SFTP block, transfers and the migrations."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN_URL

from blocks.sftp import SftpServer
from contact_center.exceptions import (
    HostKeyError,
    InvalidParameter,
    SourceUnavailable,
)
from contact_center.parsing.locations import parse_location, pick_newest, render_path
from flows.common.arrival import FetchedFile, IncomingFile
from flows.common.transfer import after_import, deliver, fetch, resolve_source


def test_parse_location_kinds() -> None:
    assert parse_location("drop/leads.csv").scheme == "file"
    assert parse_location("file:///srv/drop/a.csv").path == "/srv/drop/a.csv"
    loc = parse_location("sftp://partner-drop/incoming/leads_*.csv")
    assert (loc.scheme, loc.block, loc.directory, loc.pattern) == (
        "sftp",
        "partner-drop",
        "incoming",
        "leads_*.csv",
    )
    assert parse_location("sftp://p//srv/x.csv").path == "/srv/x.csv"


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "non-empty"),
        ("ftp://host/x.csv", "unsupported scheme 'ftp'"),
        ("sftp://Partner/x.csv", "not a block name"),
        ("sftp://partner", "sftp://<block-name>/<path>"),
        ("drop/../../etc/passwd", r"climbs out"),
        ("sftp://partner/in/../../x", r"climbs out"),
    ],
)
def test_parse_location_refuses(text: str, match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        parse_location(text)


def test_render_path_and_glob_pick() -> None:
    when = datetime(2026, 11, 29, 6, 0)
    assert render_path("leads_{date:%Y%m%d}.csv", when) == "leads_20261129.csv"
    assert render_path("x_{date}.csv", when) == "x_2026-11-29.csv"
    with pytest.raises(InvalidParameter, match="template"):
        render_path("x_{account}.csv", when)
    entries = [("a_1.csv", 1.0), ("a_3.csv", 3.0), ("a_2.csv", 2.0), ("b.csv", 9.0)]
    assert pick_newest(entries, "a_*.csv") == "a_3.csv"
    assert pick_newest(entries, "a_*.csv", {"a_3.csv"}) == "a_2.csv"
    assert pick_newest(entries, "c*.csv") is None


def test_sftp_roundtrip_and_after_import(sshd, sftp_block: str, tmp_path: Path) -> None:
    # The sshd home is shared by the session: work in a folder of this test's own.
    folder = f"foundation-{uuid.uuid4().hex[:8]}"
    incoming = sshd.home / folder / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "old.csv").write_bytes(b"a\n1\n")
    os.utime(incoming / "old.csv", (1_700_000_000, 1_700_000_000))
    payload = b"account,phone\n" + b"1,2125550100\n" * 1000
    newest = incoming / "new.csv"
    newest.write_bytes(payload)
    pattern = f"sftp://{sftp_block}/{folder}/incoming/*.csv"
    loc = resolve_source(pattern, when=datetime.now())
    assert loc.path == f"{folder}/incoming/new.csv"
    seen: list[int] = []
    fetched = fetch(loc, tmp_path / "work", lambda done, total: seen.append(done))
    assert fetched.path.read_bytes() == payload
    assert fetched.size == len(payload) and seen[-1] == len(payload)
    again = resolve_source(pattern, when=datetime.now(), exclude={"new.csv"})
    assert again.path == f"{folder}/incoming/old.csv"
    assert after_import(loc, f"archive:{folder}/done") == f"archived to {folder}/done/new.csv"
    assert (sshd.home / folder / "done" / "new.csv").read_bytes() == payload
    assert not newest.exists()
    final, size = deliver(fetched.path, f"sftp://{sftp_block}/{folder}/out", name="copy.csv")
    out = sshd.home / folder / "out"
    assert (out / "copy.csv").read_bytes() == payload and size == len(payload)
    assert final.path == f"{folder}/out/copy.csv"
    assert not list(out.glob(".*.part"))


def test_sftp_unknown_and_changed_host_key_are_refused(sshd) -> None:
    server = SftpServer(
        host=sshd.host, port=sshd.port, username=sshd.username, private_key=sshd.private_key
    )
    with pytest.raises(HostKeyError, match="unknown"):
        server.open()
    other = sshd.known_hosts.rsplit(" ", 1)[0] + " " + "AAAAC3NzaC1lZDI1NTE5AAAAIOb" + "A" * 41
    server.known_host_keys = other
    with pytest.raises(HostKeyError, match="CHANGED"):
        server.open()


def test_sftp_password_never_in_errors(sshd, caplog: pytest.LogCaptureFixture) -> None:
    secret = "hunter2-Very-Secret"
    server = SftpServer(
        host=sshd.host,
        port=sshd.port,
        username="nobody-here",
        password=secret,
        known_host_keys=sshd.known_hosts,
    )
    with pytest.raises(SourceUnavailable, match="refused") as info:
        server.open()
    assert secret not in str(info.value)
    assert secret not in caplog.text
    assert secret not in repr(server) and secret not in str(server.model_dump())


def test_local_fetch_and_deliver(tmp_path: Path) -> None:
    src = tmp_path / "in" / "leads_20261129.csv"
    src.parent.mkdir()
    src.write_text("a\n1\n")
    template = str(tmp_path / "in" / "leads_{date:%Y%m%d}.csv")
    loc = resolve_source(template, when=datetime(2026, 11, 29))
    fetched = fetch(loc, tmp_path / "work")
    assert fetched.path == src and not fetched.temporary and len(fetched.sha256) == 64
    with pytest.raises(SourceUnavailable, match="does not exist"):
        fetch(parse_location(str(tmp_path / "nope.csv")), tmp_path / "work")
    final, size = deliver(src, str(tmp_path / "out"), name="x.csv")
    assert Path(final.path).read_text() == "a\n1\n" and size == 4


def test_migrations_create_every_table(engine: sa.Engine) -> None:
    from contact_center.storage.models import Base

    tables = set(sa.inspect(engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty database with no schema at all (to migrate step by step)."""
    from contact_center.storage.db import create_db_engine

    if request.param == "sqlite":
        engine = create_db_engine(f"sqlite:///{tmp_path / 'blank.db'}")
        yield engine
        engine.dispose()
        return
    request.getfixturevalue("pg_session_url")  # skips (or fails under CI) without PostgreSQL
    name = f"cctasks_mig_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = create_db_engine(sa.make_url(PG_ADMIN_URL).set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_runs_migrating_a_fresh_database_at_once_do_not_collide(blank_db: sa.Engine) -> None:
    """Several workers' first runs on a new database all migrate it at the same moment;
    on PostgreSQL an advisory lock lets one migrate and the others find it current."""
    from contact_center.storage.db import create_db_engine, upgrade

    if blank_db.dialect.name != "postgresql":
        pytest.skip("the lock is PostgreSQL's: SQLite serves one machine's runs")
    engines = [create_db_engine(blank_db.url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            list(pool.map(upgrade, engines))  # re-raises a migration's error
    finally:
        for engine in engines:
            engine.dispose()
    with blank_db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM calling_lists")).scalar_one() == 0


def test_migrations_keep_records_and_change_column_types(blank_db: sa.Engine) -> None:
    """0002 ("C" keys) and 0003 (custom fields as JSON text) keep a record as it was."""
    from contact_center.storage.db import upgrade

    upgrade(blank_db, "0001")
    with blank_db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO list_records (list_id, record_key, custom_fields) "
                """VALUES (1, 'ÄB-1', '{"Plan": "Gold", "Notes": "a \\"b\\""}')"""
            )
        )
    upgrade(blank_db)
    with blank_db.connect() as conn:
        custom = conn.execute(sa.text("SELECT record_key, custom_fields FROM list_records")).one()
        if blank_db.dialect.name == "postgresql":
            kinds = dict(
                conn.execute(
                    sa.text(
                        "SELECT c.table_name || '.' || c.column_name, "
                        "coalesce(c.collation_name, c.data_type) FROM information_schema.columns c "
                        "WHERE (c.table_name, c.column_name) IN (('list_records', 'record_key'), "
                        "('exclusions', 'key_value'), ('call_attempts', 'record_key'), "
                        "('list_records', 'custom_fields'))"
                    )
                ).all()
            )
            assert kinds == {
                "list_records.record_key": "C",
                "exclusions.key_value": "C",
                "call_attempts.record_key": "C",
                "list_records.custom_fields": "text",
            }
    assert custom[0] == "ÄB-1"
    loaded = custom[1] if isinstance(custom[1], dict) else json.loads(custom[1])
    assert loaded == {"Plan": "Gold", "Notes": 'a "b"'}
    upgrade_down_and_up(blank_db)


def upgrade_down_and_up(engine: sa.Engine) -> None:
    """The migration also goes back (and forth again) without losing the record."""
    from alembic import command

    from contact_center.storage.db import _alembic_config, upgrade

    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM list_records")) == 1


# --- following a download ------------------------------------------------------------------


def test_download_is_read_while_it_arrives_over_sftp(sshd, sftp_block: str, tmp_path: Path) -> None:
    folder = f"follow-{uuid.uuid4().hex[:8]}"
    (sshd.home / folder).mkdir()
    payload = os.urandom(3 << 20)  # several wake-ups, and paramiko's 32 KiB blocks
    (sshd.home / folder / "big.bin").write_bytes(payload)
    incoming = IncomingFile()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            fetch,
            parse_location(f"sftp://{sftp_block}/{folder}/big.bin"),
            tmp_path,
            incoming=incoming,
        )
        incoming.follow(future)
        with incoming.open() as stream:
            read = stream.read()
        fetched = future.result()
    assert read == payload
    assert incoming.whole() == fetched and fetched.sha256 == hashlib.sha256(payload).hexdigest()
    assert fetched.path.read_bytes() == payload


def _attempt(incoming: IncomingFile, part: Path, data: bytes, upto: int) -> None:
    """One fetch attempt that writes ``data[:upto]`` of a file of ``len(data)`` bytes."""
    location = parse_location(str(part.with_name("list.csv")))
    with part.open("wb", buffering=0) as out:
        incoming.started(part, location, len(data))
        writer = incoming.writer(out)
        for start in range(0, upto, 300):
            writer.write(data[start : min(start + 300, upto)])


def test_a_retry_of_the_same_file_goes_on_where_the_reader_was(tmp_path: Path) -> None:
    data = os.urandom(3000)
    part = tmp_path / "list.part"
    incoming = IncomingFile()
    _attempt(incoming, part, data, 1000)
    stream = incoming.open()
    assert stream.read(900) == data[:900]
    incoming.failed(OSError("connection reset"))
    with ThreadPoolExecutor(1) as pool:
        rest = pool.submit(stream.read)  # waits for the retry to repeat the first bytes
        _attempt(incoming, part, data, 3000)
        location = parse_location(str(tmp_path / "list.csv"))
        sha = hashlib.sha256(data).hexdigest()
        incoming.finished(FetchedFile(part, "list.csv", location, 3000, sha, temporary=True))
        assert rest.result(timeout=10) == data[900:]
    stream.close()


def test_a_retry_that_brings_other_bytes_fails_the_reader(tmp_path: Path) -> None:
    data = os.urandom(3000)
    part = tmp_path / "list.part"
    incoming = IncomingFile()
    _attempt(incoming, part, data, 1000)
    stream = incoming.open()
    assert stream.read(500) == data[:500]
    incoming.failed(OSError("connection reset"))
    _attempt(incoming, part, b"X" + data[1:], 1500)  # the file changed at the source
    with pytest.raises(SourceUnavailable, match="changed between download attempts"):
        stream.read()
    stream.close()


def test_download_waits_for_more_and_ends_with_the_file(tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_bytes(b"a,b\n1,2\n")
    incoming = IncomingFile()
    # A reader that comes first waits for the start, then reads to the end.
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(lambda: incoming.open().read())
        fetched = fetch(parse_location(str(source)), tmp_path / "work", incoming=incoming)
        assert reading.result(timeout=10) == b"a,b\n1,2\n"
    assert incoming.fetched == fetched


def test_download_that_fails_for_good_fails_its_reader_with_the_fetch_error(
    tmp_path: Path,
) -> None:
    incoming = IncomingFile()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            fetch, parse_location(str(tmp_path / "missing.csv")), tmp_path, incoming=incoming
        )
        incoming.follow(future)
        with pytest.raises(SourceUnavailable, match="does not exist"):
            future.result()
    with pytest.raises(SourceUnavailable, match="does not exist"):
        incoming.open()


def test_sftp_get_reads_window_after_window(
    sshd, sftp_block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import blocks.sftp as sftp_module

    monkeypatch.setattr(sftp_module, "READ_WINDOW_BYTES", 100_000)  # a window not of 32 KiB
    folder = f"windows-{uuid.uuid4().hex[:8]}"
    (sshd.home / folder).mkdir()
    payload = os.urandom(1_000_003)
    (sshd.home / folder / "big.bin").write_bytes(payload)
    (sshd.home / folder / "empty.bin").write_bytes(b"")
    seen: list[tuple[int, int]] = []
    big = fetch(
        parse_location(f"sftp://{sftp_block}/{folder}/big.bin"),
        tmp_path,
        lambda done, total: seen.append((done, total)),
    )
    assert big.path.read_bytes() == payload and seen[-1] == (len(payload), len(payload))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    empty = fetch(parse_location(f"sftp://{sftp_block}/{folder}/empty.bin"), tmp_path)
    assert empty.size == 0 and empty.path.read_bytes() == b""


def test_sftp_connection_sends_requests_without_nagle_delay(sftp_block: str) -> None:
    """SFTP asks and waits: each request goes out at once (TCP_NODELAY), not after
    the last answer's delayed ACK (which cost 40 ms per read window)."""
    import socket

    with SftpServer.load(sftp_block).open() as session:
        sock = session.raw().get_channel().get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
