"""``make bench``: figures for the identity and policy paths (prints p50/p99, never asserts).

Runs against the test database (created if needed) inside a transaction that
is rolled back, with the real Redis. Measures token signing and verification;
an authenticated request with and without the policy permission against an
unauthenticated baseline; the embedded Rego engine alone, for 100 inputs, and
with its decision record written; and a sign-in with production Argon2.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django

django.setup()

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import override_settings, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402
from rest_framework.permissions import IsAuthenticated  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from core.ratelimit import check  # noqa: E402
from core.redis import get_redis  # noqa: E402
from policy.enforcement import decide  # noqa: E402
from policy.engine import EmbeddedEngine  # noqa: E402
from policy.source import PolicySource  # noqa: E402
from security.apis import MeApi  # noqa: E402
from security.identity.revocation import is_revoked  # noqa: E402
from security.identity.signing_keys import generate_signing_key, load_keyring  # noqa: E402
from security.identity.tokens import issue_access_token, verify_access_token  # noqa: E402
from security.models import AuthSession, User  # noqa: E402
from services.participants.models import Participant  # noqa: E402
from services.studies.models import Study  # noqa: E402
from tenants.lifecycle import community_create  # noqa: E402
from tenants.models import Community  # noqa: E402
from tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory  # noqa: E402
from vault.crypto import associated_data, open_sealed, seal  # noqa: E402
from vault.fields import EncryptedTextField, Sealed  # noqa: E402
from vault.keys import cache as data_key_cache  # noqa: E402
from vault.keys import community_keys_ensure  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent / "policy" / "corpus" / "sample.jsonl"


def measure(label: str, action: Callable[[], object], *, runs: int, warmup: int = 20) -> list[float]:
    """Run ``action`` and print p50/p99/mean in milliseconds."""
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{label:<48} p50 {p50:8.3f} ms   p99 {p99:8.3f} ms   mean {statistics.fmean(samples):8.3f} ms  (n={runs})")
    return samples


def main() -> None:
    """Set up a community and a member, then measure."""
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, keepdb=True)
    get_redis().flushdb()  # the test Redis database: no counts left over from an earlier run
    if not load_keyring(settings.JWT_SIGNING_KEYS_DIR).keys:
        generate_signing_key(settings.JWT_SIGNING_KEYS_DIR)
    with transaction.atomic():
        community = Community.objects.filter(slug="alpha").first() or community_create(
            slug="alpha", name="Alpha", domain="alpha.localhost", actor_id="operator:bench"
        )
        with schema_context("alpha"):
            community_keys_ensure("alpha")
        user = UserFactory.create()
        MembershipFactory.create(user=user, community=community, role="researcher")
        # The request figures measure the pipeline, not the limiter's refusals: limits out of reach.
        with override_settings(RATE_LIMIT_PER_IP=10**9, RATE_LIMIT_IP_BURST=10**9, RATE_LIMIT_PER_USER=10**9):
            run_benchmarks(user_email=user.email, subject=str(user.pk))
        run_vault_benchmarks()
        transaction.set_rollback(True)


def run_benchmarks(*, user_email: str, subject: str) -> None:
    """The measurements themselves."""
    # A real session: revocation asks the database about any session Redis knows nothing of.
    session = AuthSession.objects.create(
        user_id=subject, community=Community.objects.get(slug="alpha"), amr=["pwd"], auth_time=timezone.now()
    )
    token = issue_access_token(
        subject=subject,
        community="alpha",
        roles=["researcher"],
        amr=["pwd"],
        auth_time=int(session.auth_time.timestamp()),
        session_id=str(session.pk),
    )
    print("identity path benchmarks (2 cores; real PostgreSQL and Redis on loopback)")
    measure(
        "issue access token (Ed25519 sign)",
        lambda: issue_access_token(
            subject=subject, community="alpha", roles=["researcher"], amr=["pwd"], auth_time=0, session_id="s"
        ),
        runs=2000,
    )
    measure(
        "verify access token (signature + claims)", lambda: verify_access_token(token, community="alpha"), runs=2000
    )
    client = APIClient(HTTP_HOST="alpha.localhost")
    baseline = measure("GET /health/live on a community host (no auth)", lambda: client.get("/health/live"), runs=500)
    authed = APIClient(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Bearer {token}")
    answer = authed.get("/api/v1/me")
    if answer.status_code != 200:  # the figures below would measure a refusal
        raise SystemExit(f"GET /api/v1/me answered {answer.status_code}: {answer.content[:200]!r}")
    with_policy = measure("GET /api/v1/me (authentication + policy)", lambda: authed.get("/api/v1/me"), runs=500)
    with mock.patch.object(MeApi, "permission_classes", (IsAuthenticated,)):
        without = measure("GET /api/v1/me (authentication only)", lambda: authed.get("/api/v1/me"), runs=500)
    difference = statistics.median(without) - statistics.median(baseline)
    print(f"{'authentication + view overhead (p50 difference)':<48} {difference:8.3f} ms")
    difference = statistics.median(with_policy) - statistics.median(without)
    print(f"{'policy permission overhead (p50 difference)':<48} {difference:8.3f} ms")
    jti, sid, live = "bench-token", str(session.pk), f"live:sid:{session.pk}"
    measure("revocation check (Redis answers)", lambda: is_revoked(token_id=jti, session_id=sid), runs=2000)
    measure(  # the DEL stands in for the live answer's expiry: one Redis trip more than a real miss
        "revocation check, no answer in Redis (query + DEL)",
        lambda: (get_redis().delete(live), is_revoked(token_id=jti, session_id=sid)),
        runs=2000,
    )
    run_policy_benchmarks(subject)
    measure(
        "rate limiter check (GCRA, one Redis round trip)",
        lambda: check("ip:bench", per=100, period_seconds=60, burst=200),
        runs=2000,
    )
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.Argon2PasswordHasher"]):
        member = User.objects.get(email=user_email)
        member.set_password(DEFAULT_PASSWORD)
        member.save()
        measure(
            "POST /api/v1/auth/token (production Argon2)",
            lambda: client.post(
                "/api/v1/auth/token", {"email": user_email, "password": DEFAULT_PASSWORD}, format="json"
            ),
            runs=30,
            warmup=2,
        )


def run_policy_benchmarks(subject: str) -> None:
    """The embedded engine alone, and with its decision record written."""
    engine = EmbeddedEngine(PolicySource.from_directory(Path(settings.POLICY_DIR)))
    corpus = [json.loads(line) for line in CORPUS.read_text().splitlines()]
    documents = iter(corpus * 10)
    measure("embedded policy decision (one input)", lambda: engine.decide(next(documents)), runs=3000)
    batch = corpus[:100]
    measure("embedded policy, 100 inputs one by one", lambda: [engine.decide(item) for item in batch], runs=20)
    document = {**corpus[0], "subject": {**corpus[0]["subject"], "id": subject}}
    with schema_context("alpha"):
        measure("decide + write decision record", lambda: decide(document), runs=500)


def throughput(label: str, action: Callable[[], int], seconds: float = 2.0) -> float:
    """Run ``action`` (which returns how many fields it handled) for a while; print fields per second."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += action()
    rate = done / (time.perf_counter() - started)
    print(f"{label:<48} {rate:12,.0f} fields/s (one thread)")
    return rate


def run_vault_benchmarks() -> None:
    """Field encryption and decryption throughput, and provider calls on a warm cache."""
    aad = associated_data(community="alpha", model="m", field="f", row="r", key_version=1)
    cipher = AESGCM(AESGCM.generate_key(bit_length=256))
    token = seal(cipher, b"Lovelace-Byron", key_version=1, aad=aad)
    throughput(
        "seal one field (AES-256-GCM)",
        lambda: sum(1 for _ in range(1000) if seal(cipher, b"Lovelace-Byron", key_version=1, aad=aad)),
    )
    throughput(
        "open one field (AES-256-GCM)", lambda: sum(1 for _ in range(1000) if open_sealed(cipher, token, aad=aad))
    )
    fields = [field.name for field in Participant._meta.fields if isinstance(field, EncryptedTextField)]
    with schema_context("alpha"):
        study = Study.objects.create(protocol_number="BENCH-1", title="Bench")
        ids = [
            Participant.objects.create(
                study=study, date_of_birth=datetime.date(1980, 1, 1), **{name: f"{name} {n}" for name in fields}
            ).pk
            for n in range(200)
        ]
        rows = list(Participant.objects.filter(pk__in=ids))

        def decrypt_loaded() -> int:
            for row in Participant.objects.filter(pk__in=ids[:50]):
                for name in fields:
                    getattr(row, name)
            return 50 * len(fields)

        throughput("load 50 participants and open 10 fields each", decrypt_loaded)
        sealed = [
            (row, {name: row.__dict__[name] for name in fields}) for row in Participant.objects.filter(pk__in=ids[:50])
        ]

        def decrypt_only() -> int:
            for row, tokens in sealed:
                for name, token in tokens.items():
                    row.__dict__[name] = Sealed(token.token, token.community, token.row)
                    getattr(row, name)
            return 50 * len(fields)

        throughput("open fields of loaded rows (descriptor path)", decrypt_only)
        calls = data_key_cache.provider_calls
        for row in Participant.objects.filter(pk__in=ids[:100]):
            for name in fields:
                getattr(row, name)
        print(f"{'provider calls per 1,000 PHI reads (warm cache)':<48} {data_key_cache.provider_calls - calls:12d}")
        assert rows


if __name__ == "__main__":
    main()
