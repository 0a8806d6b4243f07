"""SigV4 verification of control-plane requests, with botocore's own canonicalisation.

We rebuild the request the client signed (method, the raw path and query exactly as received,
only the headers it listed in ``SignedHeaders``, the body) and let ``botocore.auth.SigV4Auth``
compute the signature, so every quirk of how boto3 canonicalises (double-encoded ``%2F`` in
``/tags/{arn}``, query ordering, header whitespace) is reproduced exactly rather than
re-implemented. Failures raise ``AccessDeniedException``, the only auth error the ivschat model
knows. Secrets, signatures and the Authorization header are never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from calendar import timegm
from collections.abc import Mapping, Sequence

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from api.errors import AccessDeniedException

SERVICE = "ivschat"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60  # what AWS allows between X-Amz-Date and the server clock
_REQUIRED_SIGNED = ("host", "x-amz-date")  # without these a signature could be replayed elsewhere
_UNSIGNED_PAYLOADS = ("UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*\Z"
)
_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z")  # with fullmatch: "$" would let a final "\n" through


def _deny(why: str) -> AccessDeniedException:
    return AccessDeniedException(f"Request signature rejected: {why}")


def _amz_date_epoch(amz_date: str) -> int:
    return timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))


def verify(
    *,
    method: str,
    raw_path: str,
    headers: Mapping[str, Sequence[str]],
    body: bytes,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    now: float | None = None,
) -> None:
    """Raise ``AccessDeniedException`` unless the request carries a valid SigV4 signature.

    ``headers`` maps lower-case header names to every value received for that name;
    ``raw_path`` is the path and query string exactly as they arrived on the request line.
    """
    if not access_key_id or not secret_access_key:
        # A server with no credentials configured must not accept everything.
        raise _deny("the server has no API credentials configured")
    authorization = headers.get("authorization")
    if not authorization:
        raise AccessDeniedException("Missing Authentication Token")
    match = _AUTH_RE.match(authorization[0])
    if match is None:
        raise _deny(f"the Authorization header is not a {ALGORITHM} signature")

    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise _deny("malformed credential scope")
    key_id, scope_date, scope_region, scope_service, _ = parts
    if not hmac.compare_digest(key_id.encode(), access_key_id.encode()):
        raise AccessDeniedException("The security token included in the request is invalid")
    if scope_service != SERVICE:
        raise _deny(f"credential should be scoped to the service '{SERVICE}'")
    if scope_region != region:
        raise _deny(f"credential should be scoped to the region '{region}'")

    signed = match["signed"].split(";")
    missing = [name for name in _REQUIRED_SIGNED if name not in signed]
    if missing:
        raise _deny(f"SignedHeaders must include {', '.join(missing)}")
    amz_date_values = headers.get("x-amz-date") or []
    amz_date = amz_date_values[0] if amz_date_values else ""
    if not _AMZ_DATE_RE.fullmatch(amz_date):
        raise _deny("X-Amz-Date is missing or malformed")
    if amz_date[:8] != scope_date:
        raise _deny("the credential scope date does not match X-Amz-Date")
    current = time.time() if now is None else now
    if abs(current - _amz_date_epoch(amz_date)) > MAX_SKEW_SECONDS:
        raise _deny("the signature is expired or not yet valid (X-Amz-Date is more than 15 minutes off)")

    # botocore trusts a signed X-Amz-Content-SHA256 instead of hashing the body, so it must
    # match the body we actually received.
    content_sha_values = headers.get("x-amz-content-sha256") or []
    content_sha = content_sha_values[0] if content_sha_values else None
    if "x-amz-content-sha256" in signed and (
        content_sha in _UNSIGNED_PAYLOADS or content_sha != hashlib.sha256(body).hexdigest()
    ):
        raise _deny("X-Amz-Content-SHA256 does not match the request body")

    signed_values: list[tuple[str, str]] = []
    for name in signed:
        values = headers.get(name)
        if not values:
            raise _deny(f"signed header '{name}' is missing from the request")
        signed_values.extend((name, value) for value in values)

    # An http:// URL makes botocore always hash the body (it may skip that for https), and
    # boto3 signs ivschat bodies either way.
    request = AWSRequest(method=method.upper(), url=f"http://{headers['host'][0]}{raw_path}", data=body)
    for name, value in signed_values:
        request.headers[name] = value  # HTTPHeaders appends: repeated headers stay repeated
    request.context["timestamp"] = amz_date

    signer = SigV4Auth(Credentials(access_key_id, secret_access_key), SERVICE, scope_region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected.encode(), match["signature"].encode()):
        raise _deny(
            "the request signature we calculated does not match the signature you provided; "
            "check your AWS Secret Access Key and signing method"
        )
