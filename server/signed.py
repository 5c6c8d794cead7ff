"""Requests h5cloud signs itself (S3 GETs in storage/s3get.py, Lambda Invoke in
offload/invoke.py; here, beside web.py, because both layers use it): botocore's SigV4
signer, sent with aiohttp, skipping the SDK's per-call machinery (endpoint rules, event
hooks, parsing), which costs more CPU than the request. The keys are the
ones in the settings, or the SDK's default chain (environment, web identity, role)."""
import os

import aiohttp
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from yarl import URL


def keys_of(access_key: str, secret_key: str) -> tuple | None:
    """(access key, secret, session token or None) from the settings; None when they
    name no keys. A role's keys (Lambda, ECS) come with a session token beside them in
    the environment."""
    if not (access_key and secret_key):
        return None
    token = os.environ.get("AWS_SESSION_TOKEN") \
        if access_key == os.environ.get("AWS_ACCESS_KEY_ID") else None
    return access_key, secret_key, token or None


class CredentialSource:
    """Fixed keys, or the default chain through an aiobotocore session (refreshed when
    they expire)."""

    def __init__(self, keys: tuple | None, session, operation: str):
        self._keys = Credentials(*keys) if keys else None
        self._session = session
        self._chain = None
        self._operation = operation         # named in the error when there are none

    async def get(self) -> Credentials:
        if self._keys is not None:
            return self._keys
        if self._chain is None:
            self._chain = await self._session.get_credentials()
            if self._chain is None:
                raise ClientError({"Error": {"Code": "NoCredentials",
                                             "Message": "no AWS credentials found"}},
                                  self._operation)
        return await self._chain.get_frozen_credentials()


class SignedHttp:
    """One service's signed requests over a pool of `connections` (opened on first use)."""

    def __init__(self, credentials: CredentialSource, signer, service: str, region: str,
                 connections: int, connect_timeout: float, read_timeout: float):
        self._credentials = credentials
        self._signer, self._service, self._region = signer, service, region
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._http = None

    async def send(self, method: str, url: str, headers: dict, data: bytes | None = None):
        """(status, headers, body) of the answer; aiohttp's errors as they come."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=self._timeout,
                auto_decompress=False)     # no trust_env: it reads ~/.netrc per request
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        self._signer(await self._credentials.get(), self._service,
                     self._region).add_auth(request)
        async with self._http.request(method, URL(request.url, encoded=True), data=data,
                                      headers=dict(request.headers.items())) as rsp:
            return rsp.status, rsp.headers, await rsp.read()

    async def close(self):
        if self._http is not None:
            await self._http.close()
            self._http = None
