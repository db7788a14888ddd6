"""A downloaded de-identified file carries its own SHA-256 (``Digest``, RFC 3230), so a recipient can check it.

HIPAA 164.312(e)(2)(i), integrity controls in transmission: the header is the
manifest's digest of the plaintext, so a file altered anywhere between the
service and the recipient no longer matches what the service said it sent.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from rest_framework.test import APIClient

from security.models import User
from tests.support.exports import EXPORTS, ReadyExport


def _received(client: APIClient, export_id: str) -> tuple[str, bytes]:
    response = client.get(f"{EXPORTS}{export_id}/download/")
    assert response.status_code == 200, response.content
    return response["Digest"], b"".join(response.streaming_content)  # type: ignore[attr-defined]


def _sha256_header(content: bytes) -> str:
    return "sha-256=" + base64.b64encode(hashlib.sha256(content).digest()).decode("ascii")


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_the_download_names_the_sha256_of_exactly_the_bytes_sent(
    export_format: str, pi: tuple[APIClient, User], ready_export: ReadyExport
) -> None:
    client, _ = pi
    export_id = ready_export(export_format)["id"]

    digest, content = _received(client, export_id)
    manifest = client.get(f"{EXPORTS}{export_id}/manifest/").json()

    assert content, "the file holds the dataset"
    assert digest == _sha256_header(content)
    assert base64.b64decode(digest.removeprefix("sha-256=")).hex() == manifest["sha256"]


def test_each_export_carries_the_digest_of_its_own_file(pi: tuple[APIClient, User], ready_export: ReadyExport) -> None:
    client, _ = pi
    first, second = ready_export()["id"], ready_export()["id"]

    (first_digest, first_content), (second_digest, second_content) = _received(client, first), _received(client, second)

    assert first_content != second_content  # fresh research ids in every export
    assert (first_digest, second_digest) == (_sha256_header(first_content), _sha256_header(second_content))
    assert first_digest != second_digest
