"""Errors at the SFTP boundary keep paramiko's cause (``raise … from exc``), and no
secret of the block appears anywhere in the chain, against the real test sshd."""

from __future__ import annotations

import traceback
from pathlib import Path

import paramiko
import pytest
from conftest import free_port
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from support.sshd_server import Sshd

from blocks.sftp import SftpServer
from contact_center.exceptions import SourceUnavailable

PASSWORD = "pw-S3CRET-7f1e"
PASSPHRASE = b"phrase-S3CRET-9c2d"


def _chain(exc: BaseException) -> str:
    """Everything a log or a state message could show of ``exc``: the whole chain."""
    return "".join(traceback.format_exception(exc))


def _server(sshd: Sshd, **credentials: object) -> SftpServer:
    return SftpServer(
        host=sshd.host,
        port=sshd.port,
        username=sshd.username,
        known_host_keys=sshd.known_hosts,
        **credentials,  # type: ignore[arg-type]
    )


def _new_key(passphrase: bytes | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
        .decode()
    )


def test_a_refused_password_keeps_its_cause_without_the_password(sshd: Sshd) -> None:
    server = _server(sshd, password=SecretStr(PASSWORD))
    with pytest.raises(SourceUnavailable, match="was refused") as info:
        server.open()
    assert isinstance(info.value.__cause__, paramiko.AuthenticationException)
    assert PASSWORD not in _chain(info.value)


def test_a_refused_key_keeps_its_cause_without_the_key(sshd: Sshd) -> None:
    key = _new_key()  # a valid key that the server does not know
    server = _server(sshd, private_key=SecretStr(key))
    with pytest.raises(SourceUnavailable, match="was refused") as info:
        server.open()
    assert isinstance(info.value.__cause__, paramiko.AuthenticationException)
    chain = _chain(info.value)
    assert key.splitlines()[1] not in chain


def test_a_wrong_passphrase_keeps_its_cause_without_key_or_passphrase(sshd: Sshd) -> None:
    key = _new_key(PASSPHRASE)
    server = _server(
        sshd, private_key=SecretStr(key), private_key_passphrase=SecretStr("not-the-phrase")
    )
    with pytest.raises(SourceUnavailable, match="cannot be read") as info:
        server.open()
    assert info.value.__cause__ is not None
    chain = _chain(info.value)
    assert PASSPHRASE.decode() not in chain and "not-the-phrase" not in chain
    assert key.splitlines()[1] not in chain


def test_an_unreachable_server_keeps_its_cause(tmp_path: Path) -> None:
    server = SftpServer(
        host="127.0.0.1", port=free_port(), username="nobody", password=SecretStr(PASSWORD),
        timeout=5,
    )  # fmt: skip
    with pytest.raises(SourceUnavailable, match="cannot reach SFTP server") as info:
        server.open()
    assert isinstance(info.value.__cause__, OSError)
    assert PASSWORD not in _chain(info.value)


def test_a_failed_operation_keeps_its_cause(sshd: Sshd) -> None:
    server = _server(sshd, private_key=SecretStr(sshd.private_key))
    with server.open() as session, pytest.raises(SourceUnavailable) as info:
        session.stat("no/such/folder/file.csv")
    assert isinstance(info.value.__cause__, OSError)
