"""AWS keys for the requests h5cloud signs itself (S3 GETs, Lambda Invoke): the ones in
the settings, or the SDK's default chain (environment, web identity, instance role)."""
import os

from botocore.credentials import Credentials
from botocore.exceptions import ClientError


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
