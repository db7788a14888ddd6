"""Sealing: an export at rest is chunked AES-GCM under its community's data key, bound to the community and export."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django_tenants.utils import schema_context
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from security.models import User
from services.exports.sealing import file_aad
from tests.support.exports import ReadyExport, downloaded, sealed_files
from vault.errors import CiphertextIntegrityError, KeyDestroyed
from vault.keys import read_key
from vault.sealing import SealedWriter, open_chunks, read_key_version

KEY = AESGCM.generate_key(bit_length=256)


def test_the_file_at_rest_is_sealed_with_the_communitys_key(
    pi: tuple[APIClient, User],
    export_dir: Path,
    ready_export: ReadyExport,
) -> None:
    client, _ = pi
    export = ready_export("csv")
    plaintext = downloaded(client, export["id"])
    research_ids = re.findall(r"R-[A-Z0-9]{16}", plaintext.decode())

    (path,) = sealed_files(export_dir)
    at_rest = path.read_bytes()
    assert path.relative_to(export_dir).parts[0] == "alpha"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert len(research_ids) >= 2
    for readable in [*research_ids, "research_id", "90+", "2345-7", "mmol/L", "Cambridge", "Augusta"]:
        assert readable.encode() not in at_rest, readable
    assert plaintext[:64] not in at_rest

    # Only the community's own key, for this very export, opens it.
    def opened(community: str, export_id: str) -> bytes:
        with path.open("rb") as source, schema_context(community):
            version = read_key_version(source)
            aad = file_aad(community="alpha", export_id=export_id, key_version=version)
            return b"".join(open_chunks(source, cipher=read_key(community, version), aad=aad))

    assert opened("alpha", export["id"]) == plaintext
    with pytest.raises((CiphertextIntegrityError, KeyDestroyed)):
        opened("beta", export["id"])
    with pytest.raises(CiphertextIntegrityError):
        opened("alpha", str(uuid.uuid4()))


# --- the format: chunked AES-GCM bound to the community and the export ------------------------------


def seal(data: bytes, *, chunk_bytes: int = 16) -> bytes:
    sink = io.BytesIO()
    aad = file_aad(community="alpha", export_id="export-1", key_version=3)
    writer = SealedWriter(sink, cipher=AESGCM(KEY), key_version=3, aad=aad, chunk_bytes=chunk_bytes)
    for start in range(0, len(data), 7):
        writer.write(data[start : start + 7])
    writer.close()
    return sink.getvalue()


def unseal(sealed: bytes, *, community: str = "alpha", export_id: str = "export-1") -> bytes:
    source = io.BytesIO(sealed)
    aad = file_aad(community=community, export_id=export_id, key_version=read_key_version(source))
    return b"".join(open_chunks(source, cipher=AESGCM(KEY), aad=aad))


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000), chunk_bytes=st.integers(min_value=1, max_value=300))
def test_sealing_round_trips_whatever_the_chunk_size(data: bytes, chunk_bytes: int) -> None:
    sealed = seal(data, chunk_bytes=chunk_bytes)

    assert unseal(sealed) == data
    assert len(sealed) == 9 + (max(1, -(-len(data) // chunk_bytes))) * 32 + len(data)


def chunks_of(sealed: bytes) -> tuple[bytes, list[bytes]]:
    header, rest, chunks = sealed[:9], sealed[9:], []
    while rest:
        length = int.from_bytes(rest[:4], "big")
        chunks.append(rest[: 4 + length])
        rest = rest[4 + length :]
    return header, chunks


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda header, chunks: header + b"".join(chunks[:-1]), id="last chunk dropped"),
        pytest.param(lambda header, chunks: header + b"".join([chunks[1], chunks[0], *chunks[2:]]), id="reordered"),
        pytest.param(lambda header, chunks: header + b"".join(chunks[1:]), id="first chunk dropped"),
        pytest.param(lambda header, chunks: header + b"".join(chunks) + chunks[0], id="data after the end"),
        pytest.param(lambda header, chunks: header + b"".join(chunks)[:-1], id="cut short"),
        pytest.param(lambda header, chunks: header[:5] + b"\x00\x00\x00\x04" + b"".join(chunks), id="key version"),
        pytest.param(lambda header, chunks: b"NOPE!" + header[5:] + b"".join(chunks), id="not sealed"),
        pytest.param(lambda header, chunks: header + b"\xff\xff\xff\xff" + b"".join(chunks), id="huge length"),
    ],
)
def test_a_tampered_sealed_file_does_not_open(tamper: Callable[[bytes, list[bytes]], bytes]) -> None:
    header, chunks = chunks_of(seal(b"research_id,sex\nR-1,female\nR-2,male\n" * 3))
    assert len(chunks) > 3

    with pytest.raises(CiphertextIntegrityError):
        unseal(tamper(header, chunks))


def test_a_sealed_file_opens_only_for_its_own_export() -> None:
    sealed = seal(b"R-1,female\n")

    with pytest.raises(CiphertextIntegrityError):
        unseal(sealed, export_id="export-2")
    with pytest.raises(CiphertextIntegrityError):
        unseal(sealed, community="beta")


def test_a_closed_writer_takes_no_more_data() -> None:
    writer = SealedWriter(io.BytesIO(), cipher=AESGCM(KEY), key_version=1, aad=b"x", chunk_bytes=8)
    writer.close()
    writer.close()

    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")
    with pytest.raises(ValueError, match="chunk size"):
        SealedWriter(io.BytesIO(), cipher=AESGCM(KEY), key_version=1, aad=b"x", chunk_bytes=0)
