"""Object GETs without the SDK's per-call machinery: one request signed by botocore's own
S3 SigV4 signer, sent with aiohttp.

A chunk read is one GET. Through aiobotocore it cost about 4 ms of CPU on the 2-core
development VM (endpoint rules, event hooks, parsing: py-spy put 67 % of a DN reading
cold chunks there); signed and sent this way it costs about 2. PUT, LIST, DELETE and
conditional writes stay with aiobotocore (s3.py), which also keeps its retries for them.

What a GET promises is kept: S3's 'not now' answers (5xx, throttling) and bodies cut
short or whose CRC32 differs from the checksum S3 stored raise Retry (s3.py retries those
and then answers 503); a missing key or bucket raises Missing; any other refusal raises
botocore's ClientError with S3's code, as aiobotocore would.
"""
import aiohttp
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError
from yarl import URL

from ..core import s3rest
from .credentials import CredentialSource


class Missing(Exception):
    """No such key (or bucket)."""


class Retry(Exception):
    """S3 said 'not now', or the body was cut short or damaged in transit."""


class ObjectGetter:
    def __init__(self, endpoint: str, region: str, keys: tuple | None, session,
                 connect_timeout: float, read_timeout: float, max_connections: int):
        """keys: (access key, secret, token or None), or None for the SDK's default chain
        (environment, web identity, instance role) through the aiobotocore session."""
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self._credentials = CredentialSource(keys, session, "GetObject")
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._max = max_connections
        self._http = None

    async def get(self, bucket: str, key: str, byte_range: str | None) -> tuple:
        """(body, ETag) of the object, or of the byte range ('bytes=a-b'; b'' past the
        end)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max), timeout=self._timeout,
                auto_decompress=False)     # no trust_env: it reads ~/.netrc per request
        headers = dict(s3rest.GET_HEADERS)
        if byte_range:
            headers["Range"] = byte_range
        url = s3rest.object_url(self.endpoint, self.region, bucket, key)
        request = AWSRequest(method="GET", url=url, headers=headers)
        S3SigV4Auth(await self._credentials.get(), "s3", self.region).add_auth(request)
        async with self._http.get(URL(request.url, encoded=True),
                                  headers=dict(request.headers.items())) as rsp:
            body = await rsp.read()       # a body cut short: aiohttp's ClientPayloadError
            if rsp.status in (200, 206):
                if not s3rest.crc_ok(rsp.headers, body):
                    raise Retry("the body's CRC32 differs from S3's checksum")
                return body, rsp.headers.get("ETag", "")
        code = s3rest.error_code(rsp.status, body)
        if rsp.status == 404:
            raise Missing(code)
        if rsp.status == 416:
            return b"", ""
        if s3rest.try_again(rsp.status, code):
            raise Retry(f"S3 {code} ({rsp.status})")
        raise ClientError({"Error": {"Code": code, "Message": body[:300].decode("utf-8",
                                                                               "replace")},
                           "ResponseMetadata": {"HTTPStatusCode": rsp.status}}, "GetObject")

    async def close(self):
        if self._http is not None:
            await self._http.close()
            self._http = None
