"""What a restore as a new community carries: every model of a community's schema is decided, with a reason."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings

from operations.backups.rehome import CARRIED, LEFT, carried_models


def _community_models() -> set[str]:
    tenant_apps = set(settings.TENANT_APPS)
    return {
        model._meta.label
        for model in apps.get_models()
        if model._meta.app_config.name in tenant_apps and model._meta.managed and not model._meta.proxy
    }


def test_every_model_of_a_community_is_carried_or_left_with_a_reason() -> None:
    assert set(CARRIED).isdisjoint(LEFT)
    assert _community_models() == set(CARRIED) | set(LEFT)
    assert all(reason.strip() for reason in LEFT.values())


def test_carried_rows_refer_only_to_carried_rows() -> None:
    # A carried row pointing at a row left behind would fail the restore's commit (or dangle).
    for model in carried_models():
        for field in model._meta.concrete_fields:
            if field.is_relation and field.related_model is not None:
                assert field.related_model._meta.label in CARRIED, f"{model._meta.label}.{field.name}"
