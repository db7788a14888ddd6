"""The OPA engine as production configures it: a path prefix, a bearer token, a private CA, and the checks for them.

Against the OPA double (``tests/doubles/opa.py``, after OPA v1.9.0), run the
way ``deploy/opa`` runs OPA: ``--authentication=token --authorization=basic``
with the shipped ``system.authz`` policy.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import re
import ssl
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import override_settings

from config.production_checks import configuration_problems
from policy.engine import OpaEngine, build_engine, get_engine, reset_engine
from policy.errors import PolicyUnavailable
from tests.doubles.opa import ANSWER_DEADLINE_SECONDS, BUNDLE_REVISION, OpaState, running_opa
from tests.doubles.server import serving
from tests.policy.edge_inputs import BASE

TOKEN = "service-token-of-forty-characters-000000"
OTHER_TOKEN = "someone-elses-token-of-forty-characters0"


def engine(url: str, **options: str) -> OpaEngine:
    return OpaEngine(url, timeout=ANSWER_DEADLINE_SECONDS, **options)


def why_unavailable(call: Callable[[], object]) -> str:
    """The reason (for the log, never the client) of the PolicyUnavailable ``call`` raises."""
    with pytest.raises(PolicyUnavailable) as error:
        call()
    return error.value.why


@pytest.fixture
def guarded_opa() -> Iterator[tuple[str, OpaState]]:
    """The double as deploy/opa runs OPA: token authentication, the shipped authorization policy."""
    with running_opa(token=TOKEN) as (url, state):
        yield url, state


@pytest.mark.parametrize(
    ("host", "prefix", "url_shape"),
    [("127.0.0.1", "/policy/opa", r"http://127\.0\.0\.1:\d+/policy/opa"), ("::1", "", r"http://\[::1\]:\d+")],
    ids=["behind a path prefix", "on the IPv6 loopback"],
)
def test_the_opa_url_is_kept_whole_for_decisions_and_readiness(host: str, prefix: str, url_shape: str) -> None:
    # A prefix travels in the client's version; urlparse drops an IPv6 literal's brackets, put back.
    with running_opa(host=host, path_prefix=prefix) as (url, state):
        assert re.fullmatch(url_shape, url)
        opa = engine(url)

        decision = opa.decide(BASE)
        opa.check_ready()

    assert decision.allow
    assert decision.revision == f"opa:authz={BUNDLE_REVISION}"
    seen = [(request["method"], request["path"]) for request in state.requests]
    assert ("POST", "/v1/data/gateway/authz/decision") in seen
    assert ("GET", "/health") in seen


def test_without_the_prefix_the_proxy_knows_no_opa() -> None:
    with running_opa(path_prefix="/policy/opa") as (url, _):
        opa = engine(url.removesuffix("/policy/opa"))

        assert "404" in why_unavailable(lambda: opa.decide(BASE))


def test_the_token_goes_out_as_a_bearer_header_and_opa_lets_the_decision_through(
    guarded_opa: tuple[str, OpaState],
) -> None:
    url, state = guarded_opa

    decision = engine(url, token=TOKEN).decide(BASE)

    assert decision.allow
    assert state.requests[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("token", ["", OTHER_TOKEN])
def test_a_missing_or_wrong_token_is_policy_unavailable_without_the_token_in_any_message(
    token: str, guarded_opa: tuple[str, OpaState], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = guarded_opa
    caplog.set_level(logging.DEBUG)

    with pytest.raises(PolicyUnavailable) as error:
        engine(url, token=token).decide(BASE)

    assert "401" in error.value.why
    assert "OPA_TOKEN" in error.value.why
    assert TOKEN not in error.value.why
    assert not token or token not in error.value.why
    assert TOKEN not in caplog.text
    assert not token or token not in caplog.text


def test_readiness_through_a_guarded_opa_needs_the_token_for_its_probe_decision(
    guarded_opa: tuple[str, OpaState],
) -> None:
    url, _ = guarded_opa

    engine(url, token=TOKEN).check_ready()
    # The health endpoint answers anyone (the probe's); the probe decision does not.
    assert "401" in why_unavailable(engine(url).check_ready)


def test_the_token_never_appears_in_the_engine_or_its_errors(guarded_opa: tuple[str, OpaState]) -> None:
    url, state = guarded_opa
    opa = engine(url, token=TOKEN)
    state.mode = "server_error"

    with pytest.raises(PolicyUnavailable) as error:
        opa.decide(BASE)

    assert TOKEN not in repr(opa)
    assert TOKEN not in error.value.why
    assert TOKEN not in str(error.value)


@pytest.mark.parametrize(
    "url",
    ["http://user:secret@127.0.0.1:8181", "http://127.0.0.1:8181/?token=x", "http://127.0.0.1:8181/#x", "opa:8181"],
)
def test_an_opa_url_with_credentials_a_query_or_no_scheme_is_refused(url: str) -> None:
    assert "OPA_URL" in why_unavailable(lambda: engine(url))


def test_the_settings_reach_the_engine(guarded_opa: tuple[str, OpaState]) -> None:
    url, state = guarded_opa

    with override_settings(POLICY_ENGINE="opa", OPA_URL=url, OPA_TOKEN=TOKEN, OPA_CACERT=""):
        decision = build_engine().decide(BASE)

    assert decision.allow
    assert state.requests[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"


# --- https with a private CA --------------------------------------------------------------


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]) if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    else:
        address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        builder = builder.add_extension(x509.SubjectAlternativeName([address]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


@pytest.fixture
def private_ca(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA of our own, and a server context whose certificate (for 127.0.0.1) it signed."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test opa ca", ca_key, None)
    server = _certificate("127.0.0.1", server_key, ("test opa ca", ca_key))
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "opa.pem", tmp_path / "opa.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


def test_an_https_opa_is_verified_against_opa_cacert(private_ca: tuple[Path, ssl.SSLContext]) -> None:
    ca_file, context = private_ca

    with running_opa(token=TOKEN, tls=context) as (url, _):
        assert url.startswith("https://")
        assert engine(url, token=TOKEN, cacert=str(ca_file)).decide(BASE).allow
        # Without the CA, the bundle requests ships (certifi's) does not know the certificate: fail closed.
        assert "SSLError" in why_unavailable(lambda: engine(url, token=TOKEN).decide(BASE))
        missing = str(ca_file.parent / "missing.pem")
        assert "OSError" in why_unavailable(lambda: engine(url, token=TOKEN, cacert=missing).decide(BASE))


# --- what production demands -----------------------------------------------------------------

FIT = {"POLICY_ENGINE": "opa", "OPA_URL": "https://opa.internal:8443", "OPA_TOKEN": TOKEN}


def opa_problems(**changes: str) -> list[str]:
    environ = {**FIT, **changes}
    return [problem for problem in configuration_problems(environ) if "OPA" in problem or "POLICY" in problem]


def test_a_remote_opa_with_its_token_is_fit_for_production() -> None:
    assert opa_problems() == []
    assert opa_problems(OPA_URL="http://127.0.0.1:8181", OPA_TOKEN="") == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"OPA_TOKEN": ""}, "OPA_TOKEN is not set"),
        ({"OPA_TOKEN": "short"}, "OPA_TOKEN is shorter than 32 characters"),
        ({"OPA_URL": "http://127.0.0.1:8181", "OPA_TOKEN": "short"}, "OPA_TOKEN is shorter than 32 characters"),
        ({"OPA_URL": "https://svc:secret@opa.internal"}, "OPA_URL carries credentials"),
        (
            {"OPA_URL": "http://127.0.0.1:8181", "OPA_CACERT": "/etc/ca.pem"},
            "OPA_CACERT is set but OPA_URL is not https",
        ),
    ],
)
def test_production_refuses_an_opa_reached_unsafely(changes: dict[str, str], problem: str) -> None:
    assert any(problem in found for found in opa_problems(**changes)), opa_problems(**changes)


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with ``answer`` (a status and headers) and records what it saw."""

    seen: ClassVar[list[dict[str, str]]]
    answer: ClassVar[tuple[int, dict[str, str]]]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _record(self) -> None:
        self.seen.append({"path": self.path, **dict(self.headers)})
        status, headers = self.answer
        self.send_response(status)
        for name, value in {**headers, "Content-Length": "0"}.items():
            self.send_header(name, value)
        self.end_headers()

    def do_GET(self) -> None:
        self._record()

    def do_POST(self) -> None:
        self._record()


def _recorder(status: int, headers: dict[str, str]) -> type[_Recorder]:
    return type("BoundRecorder", (_Recorder,), {"seen": [], "answer": (status, headers)})


def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else() -> None:
    elsewhere = _recorder(200, {})
    with serving(elsewhere) as target:
        redirecting = _recorder(307, {"Location": f"{target}/v1/data/gateway/authz/decision"})
        with serving(redirecting) as url:
            opa = engine(url, token=TOKEN)

            why = why_unavailable(lambda: opa.decide(BASE))

    assert "TooManyRedirects" in why or "307" in why
    assert redirecting.seen
    assert elsewhere.seen == []


def test_a_proxy_named_in_the_environment_never_sees_the_token(
    guarded_opa: tuple[str, OpaState], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = _recorder(502, {})
    with serving(proxy) as proxy_url:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        url, _ = guarded_opa

        decision = engine(url.replace("127.0.0.1", "localhost"), token=TOKEN).decide(BASE)

    assert decision.allow
    assert proxy.seen == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:abc", "http://[::1]:70000"])
def test_an_opa_url_with_a_port_that_is_no_port_is_refused(url: str, caplog: pytest.LogCaptureFixture) -> None:
    assert "port" in why_unavailable(lambda: engine(url))
    reset_engine()
    with override_settings(POLICY_ENGINE="opa", OPA_URL=url), caplog.at_level(logging.ERROR, "policy.engine"):
        for _ in range(2):  # the first use and the remembered failure alike: 503, said once in the log
            with pytest.raises(PolicyUnavailable):
                get_engine()
    reset_engine()
    assert [record.getMessage() for record in caplog.records] == [
        "policy engine unavailable: OPA_URL has a port that is not a number from 0 to 65535"
    ]


class _Answering(BaseHTTPRequestHandler):
    """Answers a decision (allow) with the status it is given, and a body."""

    status: ClassVar[int]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        allow = {"allow": True, "reasons": ["role_grants_action"]}
        obligations = {"redact": [], "require_mfa": False, "audit": "normal", "conditions": {}}
        provenance = {"bundles": {"authz": {"revision": "r-1"}}}
        body = json.dumps({"result": {**allow, "obligations": obligations}, "provenance": provenance}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_the_same_allow_under_200_is_a_decision() -> None:
    with serving(type("BoundAnswering", (_Answering,), {"status": 200})) as url:
        assert engine(url).decide(BASE).allow


@pytest.mark.parametrize("status", [201, 203, 206, 300])
def test_an_allow_under_any_status_but_200_is_no_decision(status: int) -> None:
    # query_rule calls raise_for_status only: a 2xx, or a 3xx without Location, read as a decision.
    with serving(type("BoundAnswering", (_Answering,), {"status": status})) as url:
        why = why_unavailable(lambda: engine(url).decide(BASE))

    assert f"OPA refused the decision ({status})" in why


def test_a_redirected_health_check_is_not_ready_rather_than_unreachable() -> None:
    with serving(_recorder(302, {"Location": "http://127.0.0.1:1/health"})) as url:
        assert "OPA is not ready (302)" in why_unavailable(lambda: engine(url).check_ready())
