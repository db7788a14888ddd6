"""``kong_config [--out FILE] [--with-keys --upstream-ca PEM] [--check]``: Kong's declarative configuration.

Without options it writes the repository's ``deploy/kong/kong.yml``, which is
not deployable (no token keys, no CA for the service's certificate). A deploy
file takes both: ``--with-keys`` (the public keys that verify tokens now) and
``--upstream-ca`` (the CA chain of the service's certificate, its root
included).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from gateway.kong import kong_config, render
from security.identity.signing_keys import current_keyring

DEFAULT_OUT = Path(settings.BASE_DIR) / "deploy" / "kong" / "kong.yml"


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issuer(certificate: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate | None:
    """The certificate of ``candidates`` whose key signed ``certificate`` (itself, for a self-signed one)."""
    for candidate in candidates:
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _reaches_a_root(certificate: x509.Certificate, candidates: list[x509.Certificate]) -> bool:
    """Whether issuers among ``candidates`` lead from ``certificate`` to a self-signed certificate."""
    chain = [certificate]
    while (issuer := _issuer(chain[-1], candidates)) is not None and issuer not in chain:
        chain.append(issuer)
    return issuer is not None and issuer == chain[-1]


def upstream_cas(path: Path) -> list[str]:
    """The PEM certificates of ``path``, one per Kong ``ca_certificates`` entity, checked as Kong checks them.

    kong/db/schema/entities/ca_certificates.lua@3.9.1:38-66: one certificate per entity, with the CA basic
    constraint, not expired. And each must chain up to a self-signed root in the file: Kong puts them in a
    trust store (kong/runloop/certificate.lua@3.9.1:221-240) without X509_V_FLAG_PARTIAL_CHAIN
    (lua-resty-openssl 1.5.1 x509/store.lua:51-80 sets a flag only when it adds a CRL), so OpenSSL ends every
    chain at a self-signed root in the store: with an intermediate alone, every handshake fails ("unable to
    get issuer certificate").
    """
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as error:
        raise CommandError(f"--upstream-ca {path}: no PEM certificate could be read ({error})") from None
    now = datetime.now(tz=UTC)
    for certificate in certificates:
        subject = certificate.subject.rfc4514_string()
        if not _is_ca(certificate):
            raise CommandError(f"--upstream-ca {path}: {subject} is not a CA certificate (no CA basic constraint)")
        if certificate.not_valid_after_utc < now:
            raise CommandError(f"--upstream-ca {path}: {subject} has expired")
        if not _reaches_a_root(certificate, certificates):
            raise CommandError(
                f"--upstream-ca {path}: {subject} does not chain up to a self-signed root in the file "
                "(Kong trusts no partial chain: include the root CA)"
            )
    return [certificate.public_bytes(serialization.Encoding.PEM).decode() for certificate in certificates]


def signing_key_pems() -> list[tuple[str, str]]:
    """(kid, SubjectPublicKeyInfo PEM) of every key that verifies tokens now."""
    return [
        (
            key.kid,
            key.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode(),
        )
        for key in current_keyring().verification_keys(time.time())
    ]


class Command(ApplicationCommand):
    """Write (or check) deploy/kong/kong.yml, or a deploy file with the token keys and the upstream CA."""

    help = "Generate Kong's DB-less configuration (decK format 3.0) from the URLconf."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --out, --with-keys, --upstream-ca and --check."""
        parser.add_argument("--out", default=str(DEFAULT_OUT))
        parser.add_argument(
            "--with-keys", action="store_true", help="include the current JWT public keys (deploy time)"
        )
        parser.add_argument(
            "--upstream-ca",
            type=Path,
            help="PEM file of the CA chain of the service's certificate, its root included (deploy time)",
        )
        parser.add_argument("--check", action="store_true", help="fail if the file differs from what would be written")

    def run(self, **options: Any) -> None:
        """Generate, then write or compare."""
        if bool(options["with_keys"]) != (options["upstream_ca"] is not None):
            raise CommandError(
                "a deploy file needs both --with-keys and --upstream-ca <pem>: Kong verifies the service's "
                "certificate (tls_verify) and cannot without the CA"
            )
        keys, cas = None, None
        if options["with_keys"]:
            cas = upstream_cas(options["upstream_ca"])
            keys = signing_key_pems()
            if not keys:
                raise CommandError("no signing keys: run `python manage.py rotate_signing_key` first")
        text = render(kong_config(signing_keys=keys, upstream_cas=cas))
        out = Path(options["out"])
        if options["check"]:
            if not out.exists() or out.read_text(encoding="utf-8") != text:
                raise CommandError(f"{out} is not what kong_config generates: run `python manage.py kong_config`")
            self.stdout.write(f"{out} is up to date")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {out}")
