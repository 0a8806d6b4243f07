"""The load test's control-plane client: the few IVS Chat operations it needs, over aiohttp.

Requests are SigV4-signed by botocore's own signer, as boto3 signs them, so the api sees exactly
what an AWS SDK would send. botocore and aiohttp are imported on first use: the spawned worker
processes import this package and need neither."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


class IvsChatApi:
    """The few IVS Chat operations the load test needs, SigV4-signed like boto3 does."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str) -> None:
        from botocore.credentials import Credentials

        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.credentials = Credentials(access_key, secret_key)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> IvsChatApi:
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def signed_headers(self, operation: str, body: bytes) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(
            method="POST",
            url=f"{self.endpoint}/{operation}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(self.credentials, "ivschat", self.region).add_auth(request)
        return dict(request.headers.items())

    async def call(self, operation: str, params: dict[str, Any], *, retries: int = 8) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("IvsChatApi.call outside `async with IvsChatApi(...)`")
        body = json.dumps(params).encode()
        delay = 0.1
        for attempt in range(retries + 1):
            headers = self.signed_headers(operation, body)
            async with self._session.post(f"{self.endpoint}/{operation}", data=body, headers=headers) as response:
                payload = await response.read()
                if response.status < 300:
                    result: dict[str, Any] = json.loads(payload) if payload else {}
                    return result
                code = response.headers.get("x-amzn-ErrorType", "").split(":", 1)[0] or str(response.status)
                if response.status == 429 and attempt < retries:  # ThrottlingException: IVS's TPS limits
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                raise ApiError(response.status, code, payload.decode(errors="replace")[:200])
        raise AssertionError("unreachable")
