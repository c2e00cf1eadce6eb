"""The contact-centre domain: data model, migrations, queries and the pure
parsing and normalising code. Nothing here imports Prefect or our other packages."""

from contact_center.exceptions import (
    CampaignStateError,
    CCTasksError,
    DatabaseError,
    DeliveryFailed,
    HostKeyError,
    InvalidFile,
    InvalidParameter,
    LimitExceeded,
    ObjectNotFound,
    QualityGateFailed,
    SourceUnavailable,
)

__all__ = [
    "CCTasksError",
    "CampaignStateError",
    "DatabaseError",
    "DeliveryFailed",
    "HostKeyError",
    "InvalidFile",
    "InvalidParameter",
    "LimitExceeded",
    "ObjectNotFound",
    "QualityGateFailed",
    "SourceUnavailable",
]
