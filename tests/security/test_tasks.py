"""Tasks on RabbitMQ: quorum queues that dead-letter, and tasks that check community, actor and policy."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery.exceptions import Reject
from django.conf import settings
from django_tenants.utils import schema_context
from kombu import Connection

from config.celery import app as celery_app
from config.celery import declare_queues
from core.schema import tenant_connection
from policy.models import DecisionRecord
from security.models import User
from security.tasks import CommunityTask
from tenants.lifecycle import community_suspend
from tenants.models import Community
from tests.support.broker import body_text, own_vhost
from tests.support.tokens import token_for

RAN: list[dict[str, Any]] = []


class ExportProbe(CommunityTask):
    """Stands in for a real export: records that it ran, and in which schema."""

    name = "tests.export_probe"
    policy_action = "export.request"
    policy_resource_type = "study"

    def run(self, study: str) -> str:
        RAN.append({"study": study, "schema": tenant_connection().schema_name})
        return study


export_probe = celery_app.register_task(ExportProbe())


@pytest.fixture(autouse=True)
def _forget_runs() -> Iterator[None]:
    RAN.clear()
    yield
    RAN.clear()


def run_probe(community: str, actor: Any, **kwargs: Any) -> Any:
    return export_probe(study="S-1", community=community, actor=str(actor), **kwargs)


def test_a_permitted_task_runs_inside_its_communitys_schema(alpha: Community, member: Callable[..., User]) -> None:
    investigator = member(alpha, "principal_investigator")

    assert run_probe("alpha", investigator.pk, auth_time=int(time.time()) - 60, amr=("pwd", "otp", "mfa")) == "S-1"

    assert RAN == [{"study": "S-1", "schema": "alpha"}]
    with schema_context("alpha"):
        assert DecisionRecord.objects.filter(action="export.request", allow=True).exists()


@pytest.mark.parametrize("community", ["nosuch", "beta"])
def test_a_task_for_an_unknown_or_suspended_community_is_rejected(
    community: str, alpha: Community, beta: Community, member: Callable[..., User]
) -> None:
    community_suspend(slug="beta", actor_id="operator:test")
    actor = member(alpha, "principal_investigator")

    with pytest.raises(Reject) as rejected:
        run_probe(community, actor.pk, auth_time=int(time.time()) - 60, amr=("pwd", "otp", "mfa"))

    assert getattr(rejected.value, "requeue", None) is False
    assert RAN == []


def test_a_revoked_users_queued_task_does_not_run(alpha: Community, member: Callable[..., User]) -> None:
    investigator = member(alpha, "principal_investigator")
    investigator.memberships.all().delete()  # revoked while the task waited in the queue

    with pytest.raises(Reject, match="no longer an active member"):
        run_probe("alpha", investigator.pk, auth_time=int(time.time()) - 60, amr=("pwd", "otp", "mfa"))
    assert RAN == []


def test_the_policy_is_asked_again_when_the_task_runs(alpha: Community, member: Callable[..., User]) -> None:
    researcher = member(alpha, "researcher")
    investigator = member(alpha, "principal_investigator")

    with pytest.raises(Reject, match="action_not_permitted"):
        run_probe("alpha", researcher.pk, auth_time=int(time.time()) - 60, amr=("pwd", "otp", "mfa"))
    with pytest.raises(Reject, match="mfa_required"):
        run_probe("alpha", investigator.pk)  # no second factor travelled with it
    with pytest.raises(Reject, match="mfa_required"):  # one that aged in the queue past 15 minutes
        run_probe("alpha", investigator.pk, auth_time=int(time.time()) - 20 * 60, amr=("pwd", "otp", "mfa"))
    assert RAN == []


def _next(channel: Any, queue: str) -> Any:
    """The next message of ``queue``, left unacknowledged; None when none came within 2.5 s."""
    for _ in range(50):
        if (message := channel.basic_get(queue)) is not None:
            return message
        time.sleep(0.05)
    return None


def test_task_queues_are_quorum_queues_that_dead_letter(db: None) -> None:
    body = f"probe-{uuid.uuid4()}"
    # A vhost of its own: the suite's queues hold whatever else the run queued and dead-lettered.
    with own_vhost("_dead_letter") as url, Connection(url) as connection:
        declare_queues(url)
        channel: Any = connection.default_channel
        channel.basic_publish(
            channel.prepare_message(body.encode()), exchange=settings.TASK_EXCHANGE, routing_key="default"
        )
        message = _next(channel, "default")
        assert message is not None
        assert body_text(message.body) == body
        channel.basic_reject(message.delivery_tag, requeue=False)  # what a Reject(requeue=False) does

        dead = _next(channel, "default.dead-letter")
        assert dead is not None
        assert body_text(dead.body) == body
        assert dead.headers["x-death"][0]["queue"] == "default"
        assert channel.queue_declare("default", passive=True).message_count == 0  # dead-lettered, not requeued


def test_declared_queues_carry_the_quorum_and_dead_letter_arguments() -> None:
    by_name = {queue.name: queue for queue in celery_app.conf.task_queues}

    assert set(by_name) == {
        "default",
        "default.dead-letter",
        "keys",
        "keys.dead-letter",
        "audit",
        "audit.dead-letter",
    }
    assert by_name["default"].queue_arguments["x-queue-type"] == "quorum"
    assert by_name["default"].queue_arguments["x-dead-letter-exchange"] == "gateway.dead-letter"
    assert celery_app.conf.task_acks_late is True
    assert celery_app.conf.task_reject_on_worker_lost is True
    assert celery_app.conf.task_routes["vault.tasks.*"]["queue"] == "keys"


def test_reads_never_need_rabbitmq(
    alpha: Community,
    member: Callable[..., User],
    client_for: Callable[[str], Any],
    settings: Any,
) -> None:
    token = token_for(member(alpha), alpha)
    settings.RABBITMQ_URL = settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"
    client = client_for("alpha.localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert client.get("/api/v1/me").status_code == 200
