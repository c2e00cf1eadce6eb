"""Prefect blocks: how cctasks reaches the outside world.

The email server is prefect-email's ``EmailServerCredentials``, used as it is.
"""

from blocks.database import ContactCenterDatabase
from blocks.sftp import RemoteFile, SftpServer, SftpSession

__all__ = ["ContactCenterDatabase", "RemoteFile", "SftpServer", "SftpSession"]
