"""Kong in front of the service: a deploy configuration as ``kong_config`` writes it, and the Kong double over it."""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from django.core.management import call_command

from tests.doubles.kong import KongDouble

COMMITTED = Path(__file__).resolve().parents[2] / "deploy" / "kong" / "kong.yml"
KONG_CONF = COMMITTED.parent / "kong.conf"
GATEWAY_SECRET = "k" * 48
KONG_ADDRESS = "10.20.0.5"


def kong_conf() -> dict[str, str]:
    """The settings of the committed deploy/kong/kong.conf (``key = value`` lines)."""
    lines = [line for line in KONG_CONF.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {key.strip(): value.strip() for key, value in (line.split("=", 1) for line in lines)}


Issuer = tuple[Ed25519PrivateKey, x509.Name]
_KEYS: dict[str, Ed25519PrivateKey] = {}


def certificate_authority(
    *, ca: bool = True, days: int = 30, name: str = "compliance-gateway test CA", issuer: Issuer | None = None
) -> str:
    """A CA certificate (unless ``ca`` is false) valid ``days`` from now (negative: expired), self-signed or not.

    Its key signs what names it as ``issuer`` (see :func:`issuer_of`).
    """
    key = _KEYS.setdefault(name, Ed25519PrivateKey.generate())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer, issuer_name = issuer or (key, subject)
    now = dt.datetime.now(tz=dt.UTC)
    end = now + dt.timedelta(days=days)
    start = min(now, end) - dt.timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, algorithm=None)
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def issuer_of(name: str) -> Issuer:
    """The key and name of the CA :func:`certificate_authority` made with ``name``."""
    return _KEYS[name], x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


@pytest.fixture(scope="session")
def upstream_ca() -> str:
    """The CA that issued the service's certificate (the double checks Kong trusts it)."""
    return certificate_authority()


@pytest.fixture
def production_edge(settings: Any) -> None:
    """Production's edge: only requests proven to come through Kong are served; community hosts are *.localhost."""
    settings.REQUIRE_GATEWAY = True
    settings.TRUSTED_PROXIES = ["10.20.0.0/24"]
    settings.PROXY_SHARED_SECRET = GATEWAY_SECRET
    settings.KONG_COMMUNITY_DOMAIN_SUFFIX = "localhost"


@pytest.fixture
def deploy_config(tmp_path: Path, upstream_ca: str) -> Callable[[], dict[str, Any]]:
    """The deploy file ``kong_config --with-keys --upstream-ca`` writes for the current settings, loaded."""

    def make() -> dict[str, Any]:
        ca = tmp_path / "service-ca.pem"
        ca.write_text(upstream_ca)
        out = tmp_path / "kong.deploy.yml"
        call_command("kong_config", "--with-keys", "--upstream-ca", str(ca), "--out", str(out), stdout=io.StringIO())
        loaded: dict[str, Any] = yaml.safe_load(out.read_text())
        return loaded

    return make


@pytest.fixture
def kong(
    db: None, production_edge: None, deploy_config: Callable[[], dict[str, Any]], upstream_ca: str
) -> Callable[..., KongDouble]:
    """A Kong double over the deploy configuration (or ``config``) and kong.conf, with the gateway's secret.

    The service behind it uses the database (and the token keys the test session makes with it).
    """

    def make(
        config: dict[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> KongDouble:
        return KongDouble(
            config if config is not None else deploy_config(),
            env={"KONG_GATEWAY_PROXY_SECRET": GATEWAY_SECRET} if env is None else env,
            clock=clock,
            address=KONG_ADDRESS,
            **{
                "service_ca": upstream_ca,
                "sandbox_requires": kong_conf()["untrusted_lua_sandbox_requires"].split(","),
                "client_max_body_size": int(kong_conf()["nginx_http_client_max_body_size"]),
                **options,
            },
        )

    return make
