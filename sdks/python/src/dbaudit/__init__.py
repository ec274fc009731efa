"""dbaudit: the Python SDK of the DB Audit API and its authentication gateway.

    import dbaudit
    client = dbaudit.Client()          # DBAUDIT_API_KEY, DBAUDIT_BASE_URL
    databases = client.databases.list()
"""

from ._async_client import AsyncAPIKeyList, AsyncClient
from ._client import APIKeyList, Client
from ._core import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, USER_AGENT, RequestOptions
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    DBAuditError,
    MissingCredentialError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from ._results import APIList, APIObject
from ._version import __version__

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "USER_AGENT",
    "APIConnectionError",
    "APIError",
    "APIKeyList",
    "APIList",
    "APIObject",
    "APITimeoutError",
    "AsyncAPIKeyList",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "DBAuditError",
    "MissingCredentialError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestOptions",
    "ServiceUnavailableError",
    "__version__",
]
