"""Lambda Invoke without the SDK's per-call machinery: one POST signed by botocore's own
SigV4 signer, sent with aiohttp (server/signed.py, as for S3 GETs).

The SN sends every invocation of an offloaded read from its one process, so what each
costs it bounds how many functions it can keep busy. Measured on the 2-core development
VM against a trivial Invoke endpoint, 16 at a time: aiobotocore's `invoke` 1.7-1.9 ms of
CPU per call, this 0.7-0.9 ms.
"""
from urllib.parse import quote

from aiobotocore.session import get_session
from botocore.auth import SigV4Auth

from ..signed import CredentialSource, SignedHttp, keys_of


class InvokeError(Exception):
    """The Invoke API refused the call (throttled, no such function, ...)."""


class Invoker:
    def __init__(self, settings, connections: int):
        self.region = settings.aws_region or "us-east-1"
        self.endpoint = (settings.aws_lambda_gateway or
                         f"https://lambda.{self.region}.amazonaws.com").rstrip("/")
        keys = keys_of(settings.aws_access_key_id, settings.aws_secret_access_key)
        self._http = SignedHttp(CredentialSource(keys, get_session(), "Invoke"), SigV4Auth,
                                "lambda", self.region, connections, 10, 60)

    async def invoke(self, function: str, payload: bytes) -> tuple[bytes, str | None]:
        """(the function's answer, its X-Amz-Function-Error or None) of a synchronous
        call; InvokeError when the service refuses it."""
        url = f"{self.endpoint}/2015-03-31/functions/{quote(function, safe='')}/invocations"
        status, headers, body = await self._http.send(
            "POST", url, {"X-Amz-Invocation-Type": "RequestResponse",
                          "Content-Type": "application/json"}, payload)
        if status != 200:
            raise InvokeError(f"Invoke answered {status}: "
                              f"{body[:200].decode('utf-8', 'replace')}")
        return body, headers.get("X-Amz-Function-Error")

    async def close(self):
        await self._http.close()
