"""Lambda Invoke without the SDK's per-call machinery: one POST signed by botocore's own
SigV4 signer, sent with aiohttp (as storage/s3get.py does for S3 GETs).

The SN sends every invocation of an offloaded read from its one process, so what each
costs it bounds how many functions it can keep busy. Measured on the 2-core development
VM against a trivial Invoke endpoint, 16 at a time: aiobotocore's `invoke` 1.7-1.9 ms of
CPU per call, this 0.7-0.9 ms.
"""
from urllib.parse import quote

import aiohttp
from aiobotocore.session import get_session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from yarl import URL

from ..storage.credentials import CredentialSource, keys_of


class InvokeError(Exception):
    """The Invoke API refused the call (throttled, no such function, ...)."""


class Invoker:
    def __init__(self, settings, connections: int):
        self.region = settings.aws_region or "us-east-1"
        self.endpoint = (settings.aws_lambda_gateway or
                         f"https://lambda.{self.region}.amazonaws.com").rstrip("/")
        keys = keys_of(settings.aws_access_key_id, settings.aws_secret_access_key)
        self._credentials = CredentialSource(keys, get_session(), "Invoke")
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
        self._http = None

    async def invoke(self, function: str, payload: bytes) -> tuple[bytes, str | None]:
        """(the function's answer, its X-Amz-Function-Error or None) of a synchronous
        call; InvokeError when the service refuses it."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=self._timeout, auto_decompress=False)
        url = f"{self.endpoint}/2015-03-31/functions/{quote(function, safe='')}/invocations"
        request = AWSRequest(method="POST", url=url, data=payload,
                             headers={"X-Amz-Invocation-Type": "RequestResponse",
                                      "Content-Type": "application/json"})
        SigV4Auth(await self._credentials.get(), "lambda", self.region).add_auth(request)
        async with self._http.post(URL(request.url, encoded=True), data=payload,
                                   headers=dict(request.headers.items())) as rsp:
            body = await rsp.read()
            if rsp.status != 200:
                raise InvokeError(f"Invoke answered {rsp.status}: "
                                  f"{body[:200].decode('utf-8', 'replace')}")
            return body, rsp.headers.get("X-Amz-Function-Error")

    async def close(self):
        if self._http is not None:
            await self._http.close()
            self._http = None
