"""What an API view declares about its HTTP contract, beyond the policy: the source the OpenAPI schema is built from.

Every API view (guarded or not) may declare, per HTTP method:

- ``operation_ids``: the operation's id, the method name a generated client
  gets (by default a guarded view's is its policy action, camel-cased:
  ``participant.read`` -> ``participantRead``);
- ``problem_codes``: the refusals its handler may give beyond those every
  route of its kind shares (``{409: (StudyErrorCode.STATUS_CHANGE,)}``);
- ``precondition_methods``: the methods that need ``If-Match`` with the ETag
  read (428 without it, 412 when it is stale);
- ``deprecations``: a method's deprecation and sunset
  (:class:`Deprecation`), stated in the schema and answered as the
  ``Deprecation``, ``Sunset`` and ``Link`` headers (RFC 9745, RFC 8594).

The schema generator (:mod:`gateway.openapi`) reads these, the policy's own
data (which action reveals PHI, which needs a second factor, which roles hold
it) and the pagination class; nothing about a route is written twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import ClassVar

from django.utils.http import http_date

ProblemCodes = Mapping[int, Sequence[StrEnum | str]]


@dataclass(frozen=True)
class Deprecation:
    """A method on its way out: since when, until when it answers, and what replaces it."""

    since: date
    sunset: date
    successor: str = ""

    def headers(self) -> dict[str, str]:
        """The response headers that tell a client (RFC 9745 ``Deprecation``, RFC 8594 ``Sunset``, ``Link``)."""
        return lifecycle_headers(deprecated=_midnight(self.since), sunset=_midnight(self.sunset),
                                 successor=self.successor)  # fmt: skip


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def lifecycle_headers(*, deprecated: datetime | None, sunset: datetime | None, successor: str | None) -> dict[str, str]:
    """``Deprecation`` (RFC 9745), ``Sunset`` (RFC 8594) and the successor's ``Link``, for what is given.

    One form for a deprecated API version and a deprecated operation alike.
    """
    headers: dict[str, str] = {}
    if deprecated is not None:
        headers["Deprecation"] = f"@{int(deprecated.timestamp())}"
    if sunset is not None:
        headers["Sunset"] = http_date(sunset.timestamp())
    if successor:
        headers["Link"] = f'<{successor}>; rel="successor-version"'
    return headers


class ApiContract:
    """The declarations of an API view's contract (see the module's docstring); all empty by default."""

    operation_ids: ClassVar[Mapping[str, str]] = {}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {}
    precondition_methods: ClassVar[frozenset[str]] = frozenset()
    deprecations: ClassVar[Mapping[str, Deprecation]] = {}

    @classmethod
    def declared_problems(cls, method: str) -> ProblemCodes:
        """The handler's own refusals for ``method`` (``"*"`` declares them for every method)."""
        merged: dict[int, list[StrEnum | str]] = {}
        for key in ("*", method.upper()):
            for status, codes in cls.problem_codes.get(key, {}).items():
                merged.setdefault(status, []).extend(codes)
        return merged
