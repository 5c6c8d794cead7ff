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
from botocore.auth import S3SigV4Auth
from botocore.exceptions import ClientError

from ..core import s3rest
from ..signed import CredentialSource, SignedHttp


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
        self._http = SignedHttp(CredentialSource(keys, session, "GetObject"), S3SigV4Auth,
                                "s3", region, max_connections, connect_timeout, read_timeout)

    async def get(self, bucket: str, key: str, byte_range: str | None) -> tuple:
        """(body, ETag) of the object, or of the byte range ('bytes=a-b'; b'' past the
        end)."""
        headers = dict(s3rest.GET_HEADERS)
        if byte_range:
            headers["Range"] = byte_range
        url = s3rest.object_url(self.endpoint, self.region, bucket, key)
        # a body cut short: aiohttp's ClientPayloadError
        status, rsp_headers, body = await self._http.send("GET", url, headers)
        if status in (200, 206):
            if not s3rest.crc_ok(rsp_headers, body):
                raise Retry("the body's CRC32 differs from S3's checksum")
            return body, rsp_headers.get("ETag", "")
        code = s3rest.error_code(status, body)
        if status == 404:
            raise Missing(code)
        if status == 416:
            return b"", ""
        if s3rest.try_again(status, code):
            raise Retry(f"S3 {code} ({status})")
        raise ClientError({"Error": {"Code": code, "Message": body[:300].decode("utf-8",
                                                                               "replace")},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    async def close(self):
        await self._http.close()
