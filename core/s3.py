"""An S3 bucket under a key prefix, with boto3's client made on first use: exports, the audit witness, archives.

Credentials come from the environment or the instance role; tests hand in a
client of their own. boto3 is imported only when a client is first needed,
so nothing else pays for it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured


class S3Bucket:
    """A bucket and a key prefix; ``client`` is boto3's S3 client, made on first use unless one was given."""

    def __init__(self, *, bucket: str, prefix: str = "", client: Any = None, unset: str) -> None:
        """Name the bucket; ``unset`` is the message when it is not configured.

        Raises:
            ImproperlyConfigured: no bucket.
        """
        if not bucket:
            raise ImproperlyConfigured(unset)
        self.bucket, self.prefix = bucket, prefix
        self._client = client

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use."""
        if self._client is None:
            import boto3  # type: ignore[import-untyped]  # noqa: PLC0415  # boto3 ships no type hints

            self._client = boto3.client("s3")
        return self._client
