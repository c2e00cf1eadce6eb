"""OpenPGP-encrypted lists: a key pair made here, real gpg, real sshd, real Prefect.

The private key and its passphrase live in a Prefect ``Secret`` block; the tests
look for them in the run's logs, artifacts, state message and task log, and find
nothing. Peak memory is measured in child processes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gnupg
import pytest
import sqlalchemy as sa
from prefect import get_client
from prefect.blocks.system import Secret
from prefect.client.schemas.objects import State
from prefect.logging.handlers import APILogWorker
from test_calling_list_import import artifacts, list_exists, records, run, run_logs

from contact_center.outcome import Outcome
from contact_center.parsing.openpgp import is_openpgp
from flows.exclusion_import import import_exclusions

ROOT = Path(__file__).resolve().parents[1]
PASSPHRASE = "correct horse battery staple 7f3a"
MB = 1 << 20

pytestmark = pytest.mark.skipif(
    shutil.which("gpg") is None, reason="GnuPG not installed (apt-get install -y gnupg)"
)


@dataclass(frozen=True)
class KeyPair:
    """A key pair in a GnuPG home of the test's own."""

    gpg: gnupg.GPG
    fingerprint: str
    armored: str

    def encrypt(self, plain: Path, out: Path, *, armor: bool = False) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        with plain.open("rb") as handle:
            done = self.gpg.encrypt_file(
                handle, [self.fingerprint], output=str(out), armor=armor, always_trust=True
            )
        assert done.ok, done.status
        return out


def _key_pair(home: Path, name: str, passphrase: str) -> KeyPair:
    gpg = gnupg.GPG(gnupghome=str(home))
    spec = gpg.gen_key_input(
        name_real=name,
        name_email=f"{name.lower()}@example.test",
        key_type="EDDSA",
        key_curve="ed25519",
        subkey_type="ECDH",
        subkey_curve="cv25519",
        passphrase=passphrase,
    )
    key = gpg.gen_key(spec)
    assert key.fingerprint, key.stderr
    armored = gpg.export_keys(key.fingerprint, secret=True, passphrase=passphrase)
    assert "PGP PRIVATE KEY BLOCK" in armored
    return KeyPair(gpg, key.fingerprint, armored)


@pytest.fixture(scope="module")
def keys() -> Iterator[dict[str, KeyPair]]:
    """Two key pairs: the partner's key (with a passphrase) and a stranger's."""
    home = Path(tempfile.mkdtemp(prefix="cctasks-test-gpg-"))
    try:
        (home / "a").mkdir(mode=0o700)
        (home / "b").mkdir(mode=0o700)
        yield {
            "partner": _key_pair(home / "a", "Partner", PASSPHRASE),
            "stranger": _key_pair(home / "b", "Stranger", "another passphrase 91c2"),
        }
    finally:
        for sub in ("a", "b"):
            subprocess.run(["gpgconf", "--homedir", str(home / sub), "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def key_block(keys: dict[str, KeyPair]) -> str:
    Secret(value={"key": keys["partner"].armored, "passphrase": PASSPHRASE}).save(
        "list-key", overwrite=True
    )
    return "list-key"


@pytest.fixture(autouse=True)
def _info_logs() -> Iterator[None]:
    """The runs' INFO lines reach the server (the suite logs only warnings)."""
    loggers = [logging.getLogger(n) for n in ("prefect.flow_runs", "prefect.task_runs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def write_list(path: Path, rows: int, wide: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    filler = "x" * 100
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account", "phone1", "first_name", "note"])
        for i in range(rows):
            writer.writerow([f"C{i}", f"212{2000000 + i:07d}", f"Näme{i}", filler if wide else ""])
    return path


def our_gpg_homes() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("cctasks-gpg-*")}


def secret_parts(keys: dict[str, KeyPair]) -> list[str]:
    """What must never show: the passphrase and every line of the key's body."""
    body = [
        line
        for line in keys["partner"].armored.splitlines()
        if len(line) > 20 and not line.startswith("-----")
    ]
    return [PASSPHRASE, *body]


def everything_recorded(state: State) -> str:
    """The run's logs, artifacts (data and descriptions), state message and task log."""
    APILogWorker.drain_all(timeout=5)
    parts = [run_logs(state), state.message or ""]
    for artifact in artifacts(state):
        parts += [json.dumps(artifact.data, default=str), artifact.description or ""]
    with get_client(sync_client=True) as client:
        task_log = client.read_latest_artifacts()
    parts += [json.dumps(a.data, default=str) for a in task_log]
    return "\n".join(parts)


# --- detection ---------------------------------------------------------------------------


def test_openpgp_is_told_by_name_or_first_bytes(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("account,phone1\nA1,2127365000\n", encoding="utf-8")
    binary = keys["partner"].encrypt(plain, tmp_path / "x.bin")
    armored = keys["partner"].encrypt(plain, tmp_path / "x.txt", armor=True)
    assert is_openpgp("x.bin", binary.read_bytes()[:64])
    assert is_openpgp("x.txt", armored.read_bytes()[:64])
    for name in ("leads.pgp", "LEADS.GPG", "leads.csv.asc"):
        assert is_openpgp(name, b"account\n")
    assert not is_openpgp("plain.csv", plain.read_bytes()[:64])
    assert not is_openpgp("bom.csv", "\ufeffaccount\n".encode())
    assert not is_openpgp("u16.csv", "account\n".encode("utf-16"))
    assert not is_openpgp("book.xlsx", b"PK\x03\x04")


# --- the list import ---------------------------------------------------------------------


def test_encrypted_list_from_sshd_is_imported(
    sshd: Any,
    sftp_block: str,
    engine: sa.Engine,
    tmp_path: Path,
    keys: dict[str, KeyPair],
    key_block: str,
) -> None:
    plain = write_list(tmp_path / "plain.csv", 200_000)
    target = sshd.home / "pgp" / "leads_200k.csv.pgp"
    target.parent.mkdir(parents=True, exist_ok=True)
    keys["partner"].encrypt(plain, target)
    homes = our_gpg_homes()
    state = run(
        source=f"sftp://{sftp_block}/pgp/leads_200k.csv.pgp", mapping=None, decrypt_with=key_block
    )
    assert state.is_completed(), state.message
    outcome = state.result()
    assert isinstance(outcome, Outcome)
    assert (outcome.rows_read, outcome.loaded, outcome.rejected) == (200_000, 200_000, 0)
    assert outcome.extra["encrypted"] is True
    # The checksum and size are the encrypted file's, as delivered.
    assert outcome.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert outcome.bytes == target.stat().st_size
    with engine.connect() as conn:
        count = conn.scalar(sa.text("SELECT count(*) FROM list_records"))
        first = conn.execute(
            sa.text("SELECT phone1, first_name FROM list_records WHERE record_key = 'C199999'")
        ).one()
    assert count == 200_000
    assert tuple(first) == ("+12122199999", "Näme199999")
    recorded = everything_recorded(state)
    assert "decrypted as it is read" in recorded  # the logs were read
    assert not [part for part in secret_parts(keys) if part in recorded]
    assert our_gpg_homes() == homes  # the run's GnuPG home is gone


def test_encrypted_dry_run_and_content_detection(
    tmp_path: Path, engine: sa.Engine, keys: dict[str, KeyPair], key_block: str
) -> None:
    plain = write_list(tmp_path / "plain.csv", 50)
    # Named like a plain CSV: told by its armour.
    source = keys["partner"].encrypt(plain, tmp_path / "drop" / "leads.csv", armor=True)
    state = run(source=str(source), mapping=None, decrypt_with=key_block, dry_run=True)
    assert state.is_completed(), state.message
    assert not list_exists(engine)
    found = [a for a in artifacts(state) if a.key == "cctasks-preview"]
    preview = json.loads(json.loads(found[0].data)[0]["preview"])
    assert preview["counts"]["loaded"] == 50
    assert preview["detected"]["encrypted"] is True
    assert preview["rows"][0]["phone1"] == "+12122000000"
    assert preview["custom_fields"] == ["note"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("stranger", r"'bad-key': it is not encrypted to the key in the Secret block$"),
        ("passphrase", r"'bad-key': the passphrase in the Secret block does not unlock the key$"),
        ("corrupt", r"'bad-key': it is corrupt or truncated"),
        ("truncated", r"'bad-key': it is corrupt or truncated"),
        ("missing", r"ObjectNotFound: decrypt_with: there is no Secret block named 'no-such-key'"),
        ("no-block", r"InvalidParameter: file 'leads\.pgp' is OpenPGP-encrypted; name the"),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_decryption_failures_are_one_clear_line_and_load_nothing(
    tmp_path: Path, engine: sa.Engine, keys: dict[str, KeyPair], case: str, message: str
) -> None:
    plain = write_list(tmp_path / "plain.csv", 30_000)
    source = keys["partner"].encrypt(plain, tmp_path / "drop" / "leads.pgp")
    data = source.read_bytes()
    block: str | None = "bad-key"
    if case == "stranger":
        secret: Any = {"key": keys["stranger"].armored, "passphrase": "another passphrase 91c2"}
    elif case == "passphrase":
        secret = {"key": keys["partner"].armored, "passphrase": "not the passphrase"}
    else:
        secret = {"key": keys["partner"].armored, "passphrase": PASSPHRASE}
    Secret(value=secret).save("bad-key", overwrite=True)
    if case == "corrupt":
        middle = len(data) // 2
        source.write_bytes(
            data[:middle]
            + bytes(b ^ 0x5A for b in data[middle : middle + 64])
            + data[middle + 64 :]
        )
    elif case == "truncated":
        source.write_bytes(data[: len(data) * 2 // 3])
    elif case == "missing":
        block = "no-such-key"
    elif case == "no-block":
        block = None
    state = run(source=str(source), mapping=None, decrypt_with=block)
    assert state.is_failed()
    assert re.search(message, state.message or ""), state.message
    assert "\n" not in (state.message or "")
    assert not list_exists(engine) and records(engine) == {}
    recorded = everything_recorded(state)
    assert not [part for part in secret_parts(keys) if part in recorded]
    assert "not the passphrase" not in recorded


# --- the exclusion import ----------------------------------------------------------------


def test_encrypted_exclusions_are_imported(
    tmp_path: Path, engine: sa.Engine, keys: dict[str, KeyPair], key_block: str
) -> None:
    plain = tmp_path / "dnc.csv"
    plain.write_text("account\n" + "".join(f"K{i}\n" for i in range(1000)), encoding="utf-8")
    source = keys["partner"].encrypt(plain, tmp_path / "drop" / "dnc.csv.gpg")
    state = cast(
        State,
        import_exclusions(
            exclusion_list="Partner DNC",
            source=str(source),
            decrypt_with=key_block,
            return_state=True,
        ),
    )
    assert state.is_completed(), state.message
    outcome = state.result()
    assert isinstance(outcome, Outcome)
    assert (outcome.rows_read, outcome.loaded) == (1000, 1000)
    assert outcome.extra["encrypted"] is True
    assert outcome.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM exclusions")) == 1000
    recorded = everything_recorded(state)
    assert not [part for part in secret_parts(keys) if part in recorded]


# --- memory ------------------------------------------------------------------------------

# The child reads the file as the import does (decrypting it, or not) and says its
# row count and its peak RSS.
CHILD = textwrap.dedent(
    """
    import json, re, sys
    from pathlib import Path
    from pydantic import SecretStr
    from contact_center.parsing.files import read_table
    from contact_center.parsing.openpgp import Decryptor, OpenPgpKey, read_encrypted_table
    path = Path(sys.argv[1])
    if len(sys.argv) > 2:
        key = OpenPgpKey("k", SecretStr(Path(sys.argv[2]).read_text()), SecretStr(sys.argv[3]))
        with Decryptor(key) as decryptor:
            reader = read_encrypted_table(decryptor, path, name=path.name)
            rows = sum(chunk.rows for chunk in reader)
    else:
        rows = sum(chunk.rows for chunk in read_table(path, name=path.name))
    status = Path("/proc/self/status").read_text()
    peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
    print(json.dumps({"rows": rows, "peak_kib": peak}))
    """
)


def read_in_child(*args: str) -> tuple[int, float]:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, cwd=ROOT, check=True
    )
    said = json.loads(child.stdout)
    return int(said["rows"]), said["peak_kib"] / 1024


def test_decrypting_keeps_memory_flat(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc/<pid>/status for a process's peak RSS (VmHWM)")
    plain = write_list(tmp_path / "wide.csv", 200_000, wide=True)
    encrypted = keys["partner"].encrypt(plain, tmp_path / "wide.csv.pgp")
    key_file = tmp_path / "key.asc"
    key_file.write_text(keys["partner"].armored, encoding="utf-8")
    assert plain.stat().st_size > 25 * MB
    plain_rows, plain_peak = read_in_child(str(plain))
    rows, peak = read_in_child(str(encrypted), str(key_file), PASSPHRASE)
    assert rows == plain_rows == 200_000
    # The plain text is never whole in memory: the peak stays within a few MB of the
    # plain read's, well below the file's own size on top of it.
    assert peak < plain_peak + 16, (peak, plain_peak)


def test_the_gpg_home_of_a_killed_run_is_swept_with_its_agent(
    keys: dict[str, KeyPair], key_block: str
) -> None:
    """A run killed while decrypting leaves its GnuPG home (with the key) and its agent;
    the next run's sweep stops the agent and removes the home once the run has ended."""
    from prefect.states import Crashed, Running

    from contact_center.parsing.openpgp import Decryptor
    from flows.common.decrypt import decryption_key
    from flows.common.workdir import sweep_work_folders

    with get_client(sync_client=True) as client:
        killed = client.create_flow_run(import_exclusions, state=Running()).id
    Decryptor(decryption_key(key_block), owner=str(killed)).__enter__()  # never left: killed
    [home] = [Path(tempfile.gettempdir()) / n for n in our_gpg_homes() if str(killed) in n]
    assert any(home.glob("private-keys-v1.d/*")), "the key is in the home"
    assert agents_of(home), "gpg-agent runs for it"

    assert home not in sweep_work_folders()  # the run is still Running
    assert home.exists()
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(killed, Crashed(), force=True)
    assert home in sweep_work_folders()
    assert not home.exists() and not agents_of(home)


def agents_of(home: Path) -> list[int]:
    """The pids of the gpg-agents serving ``home``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "gpg-agent" and str(home) in cmdline:
            found.append(proc.pid)
    return found
