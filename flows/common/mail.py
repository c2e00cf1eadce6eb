"""Sending an email through a prefect-email ``EmailServerCredentials`` block.

The block opens the connection (``get_server()``: SSL or STARTTLS, and the login);
this module sends through it and maps smtplib's errors to :class:`DeliveryFailed`
with the server's reply and never the password. prefect-email's own task,
``email_send_message``, is not used: it drops the recipients a server refuses while
accepting others (the report names them), and it builds its own message, whose
attachments all go as ``application/octet-stream``.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage

from prefect_email import EmailServerCredentials

from contact_center.exceptions import DeliveryFailed
from contact_center.settings import EMAIL_TIMEOUT_SECONDS

__all__ = ["send_email", "server_name"]


def server_name(credentials: EmailServerCredentials) -> str:
    server = credentials.smtp_server
    host = getattr(server, "value", server)
    port = credentials.smtp_port or getattr(credentials.smtp_type, "value", "")
    return f"{host}:{port}"


def _scrub(text: str, credentials: EmailServerCredentials) -> str:
    secret = credentials.password.get_secret_value() if credentials.password else ""
    return text.replace(secret, "***") if secret else text


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"


_default_timeout_lock = threading.Lock()


@contextmanager
def _connect_timeout(seconds: float) -> Iterator[None]:
    """Give the sockets opened in this block a timeout of ``seconds``.

    ``EmailServerCredentials.get_server()`` opens its socket with the process-wide
    default timeout, which is none: a server that stops answering would hang the run
    for good (a Prefect task timeout cannot interrupt a blocked read). The default is
    changed only while the connection opens and logs in; the socket keeps it after.
    """
    with _default_timeout_lock:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(seconds)
        try:
            yield
        finally:
            socket.setdefaulttimeout(previous)


def _opened_server(credentials: EmailServerCredentials) -> smtplib.SMTP:
    """``get_server()``, closing the connection it leaves open when the login fails.

    prefect-email opens the socket, then logs in; a refused login raises with the
    connection still open in its frame, and it would stay open until collected.
    """
    try:
        server: smtplib.SMTP = credentials.get_server()
        return server
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None:
            left_open = tb.tb_frame.f_locals.get("server")
            if isinstance(left_open, smtplib.SMTP):
                left_open.close()
            tb = tb.tb_next
        raise


def send_email(credentials: EmailServerCredentials, message: EmailMessage) -> dict[str, str]:
    """Send ``message`` through the block's SMTP server (SSL or STARTTLS, and login).

    Returns:
        The recipients the server refused while accepting others: address -> reply.

    Raises:
        DeliveryFailed: the server cannot be reached, refused the login, the sender,
            every recipient or the message. The message carries the server's reply
            and never the password.
    """
    where = server_name(credentials)
    try:
        with _connect_timeout(EMAIL_TIMEOUT_SECONDS):
            server = _opened_server(credentials)
        with server:
            refused = server.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        replies = "; ".join(f"{a}: {_reply(c, r)}" for a, (c, r) in exc.recipients.items())
        detail = _scrub(replies, credentials)
        raise DeliveryFailed(f"SMTP server {where} refused every recipient: {detail}") from exc
    except smtplib.SMTPResponseException as exc:
        detail = _scrub(_reply(exc.smtp_code, exc.smtp_error), credentials)
        raise DeliveryFailed(f"SMTP server {where} refused the report email: {detail}") from exc
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        # smtplib reports a read that timed out as a disconnection; say what happened.
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
            raise DeliveryFailed(
                f"SMTP server {where} did not answer within {EMAIL_TIMEOUT_SECONDS:g} s"
            ) from exc
        detail = _scrub(f"{type(exc).__name__}: {exc}", credentials)
        raise DeliveryFailed(f"cannot send the report email through {where}: {detail}") from exc
    return {address: _reply(code, reply) for address, (code, reply) in refused.items()}
