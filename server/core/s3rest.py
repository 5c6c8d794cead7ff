"""An S3 object GET as it goes over the wire, for the two places that send their own
(storage/s3get.py with aiohttp, chunk_read with urllib3): its URL, S3's error code and
the 'not now' codes, and the CRC32 check of a whole body. Pure functions, no I/O."""
import base64
import re
import zlib
from urllib.parse import quote

_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
             "TooManyRequestsException", "BandwidthLimitExceeded", "RequestTimeout",
             "RequestTimeTooSkewed"}
GET_HEADERS = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-checksum-mode": "ENABLED"}


def object_url(gateway: str, region: str, bucket: str, key: str) -> str:
    """Path style through a gateway; virtual-host style on AWS, except for bucket names
    with dots (they break the certificate's wildcard)."""
    path = quote(key, safe="/~")
    if gateway:
        return f"{gateway.rstrip('/')}/{bucket}/{path}"
    if "." in bucket:
        return f"https://s3.{region}.amazonaws.com/{bucket}/{path}"
    return f"https://{bucket}.s3.{region}.amazonaws.com/{path}"


def error_code(status: int, body: bytes) -> str:
    """S3's <Code> from an error body (the status as text when there is none)."""
    found = _CODE.search(body or b"")
    return found.group(1).decode("ascii", "replace") if found else str(status)


def try_again(status: int, code: str) -> bool:
    """An answer that says 'not now': worth retrying."""
    return status >= 500 or status == 429 or code in THROTTLED


def crc_ok(headers, body: bytes) -> bool:
    """False when S3 stored a whole-object CRC32 and the body does not match it (other
    algorithms are left to the chunk decoder, which refuses damaged chunks)."""
    want = headers.get("x-amz-checksum-crc32")
    if not want or headers.get("x-amz-checksum-type", "FULL_OBJECT") != "FULL_OBJECT":
        return True
    return base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode() == want
