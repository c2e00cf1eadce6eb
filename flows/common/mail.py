"""Sending an email through a prefect-email ``EmailServerCredentials`` block.

The block holds the server and the login; this module opens the connection as the
block's ``get_server()`` does (SSL or STARTTLS, and the login), with a timeout, sends,
and maps smtplib's errors to :class:`DeliveryFailed` with the server's reply and never
the password. prefect-email's own task,
``email_send_message``, is not used: it drops the recipients a server refuses while
accepting others (the report names them), and it builds its own message, whose
attachments all go as ``application/octet-stream``.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from prefect import get_run_logger
from prefect.exceptions import MissingContextError
from prefect_email import EmailServerCredentials, SMTPType

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


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a run (a check from the CLI)
        return logging.getLogger(__name__)


def _open_server(credentials: EmailServerCredentials, timeout: float) -> smtplib.SMTP:
    """The block's server, connected (SSL, STARTTLS or plain) and logged in.

    As ``EmailServerCredentials.get_server()`` does it, with two differences: every
    socket gets ``timeout`` (``get_server()`` gives none, so a server that stops
    answering would hang the run for good: a Prefect task timeout cannot interrupt a
    blocked read), and a connection whose login is refused is closed, not left open.
    """
    host = str(getattr(credentials.smtp_server, "value", credentials.smtp_server))
    kind = credentials.smtp_type
    port = credentials.smtp_port or kind.value
    context = (
        ssl.create_default_context()
        if credentials.verify
        else ssl._create_unverified_context(protocol=ssl.PROTOCOL_TLS_CLIENT)
    )
    if kind == SMTPType.SSL:
        server: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    try:
        if kind == SMTPType.STARTTLS:
            server.starttls(context=context)
        if credentials.username is not None:
            if kind == SMTPType.INSECURE or not credentials.verify:
                _logger().warning(
                    "SMTP server %s: the login is sent without a verified TLS connection",
                    server_name(credentials),
                )
            password = credentials.password.get_secret_value() if credentials.password else ""
            server.login(credentials.username, password)
    except BaseException:
        server.close()
        raise
    return server


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
        server = _open_server(credentials, EMAIL_TIMEOUT_SECONDS)
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
