"""The S3 client, from the standard AWS configuration (``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``), so AWS,
MinIO or a local S3-compatible server work unchanged.

botocore's synchronous client, called in a worker thread: botocore is already a dependency
(aiobotocore would pin it to a narrow range), and a sink makes about one PutObject per room and
destination per batch interval, which a thread pool carries easily.
"""

from __future__ import annotations

import os
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

NOT_FOUND = "not_found"
ACCESS_DENIED = "access_denied"
OTHER = "other"

_NOT_FOUND_CODES = {"NoSuchBucket", "NotFound", "404"}
_DENIED_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccountProblem",
    "403",
}


def make_client(default_region: str) -> Any:
    """A new S3 client. botocore itself reads ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` and
    the credentials; with a custom endpoint we address buckets by path (MinIO and most local
    servers have no per-bucket DNS)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or default_region
    custom_endpoint = bool(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    config = Config(
        connect_timeout=3,
        read_timeout=15,
        retries={"max_attempts": 2, "mode": "standard"},  # the sink has its own backoff
        s3={"addressing_style": "path" if custom_endpoint else "auto"},
    )
    return botocore.session.get_session().create_client("s3", region_name=region, config=config)


def classify(exc: BaseException) -> str:
    """Which IVS metric a failure feeds besides LogDestinationErrors."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in _NOT_FOUND_CODES or status == "404":
            return NOT_FOUND
        if code in _DENIED_CODES or status == "403":
            return ACCESS_DENIED
    if isinstance(exc, BotoCoreError) and type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return ACCESS_DENIED
    return OTHER
