"""The cross-package hooks (dotted paths in settings) resolve, and fit the Protocol their caller types them with.

A hook is how a lower layer calls a higher one without importing it; a rename
on either side would otherwise surface only when the hook is first called.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from policy.permissions import BreakGlassContextProvider
from security.audit.archives import ArchivedAccounting
from security.breakglass.actions import ScopeExists
from security.breakglass.selectors import ScopeWords


def keyword_parameters(function: Callable[..., Any]) -> set[str]:
    signature = inspect.signature(function)
    return {name for name, parameter in signature.parameters.items() if parameter.kind is parameter.KEYWORD_ONLY}


@pytest.mark.parametrize(
    ("setting", "protocol"),
    [
        ("POLICY_BREAK_GLASS_CONTEXT", BreakGlassContextProvider),
        ("BREAK_GLASS_SCOPE_EXISTS", ScopeExists),
        ("BREAK_GLASS_SCOPE_WORDS", ScopeWords),
        ("AUDIT_ARCHIVE_ACCOUNTING", ArchivedAccounting),
    ],
)
def test_each_hook_takes_the_keywords_its_protocol_names(setting: str, protocol: type) -> None:
    hook = import_string(getattr(settings, setting))

    assert keyword_parameters(hook) == keyword_parameters(protocol.__call__)


def test_every_readiness_check_resolves_to_a_callable_without_arguments() -> None:
    for path in settings.READINESS_CHECKS.values():
        check = import_string(path)

        assert callable(check)
        assert not inspect.signature(check).parameters
