"""What every research API shares: validated text, optimistic concurrency, audited 404s, cursors.

* Text fields refuse control characters (an MRN with a NUL or an escape
  sequence is a 400, not a row).
* Updates need ``If-Match`` with the ETag the client read: a stale one is
  409 ``edit_conflict``, none at all 428 ``if_match_required``, and ``*``
  (which names no version, so proves no read) 428 ``if_match_wildcard``;
  nothing is half-written (the request is one transaction). The 409 hands
  out the current ETag only to a caller the policy already let act on the
  record as a read of it (an update of PHI is a PHI read).
* A missing id (a random one, or one of another community) is a 404 that
  names the action and resource in the audit log, exactly like a denial
  hidden as 404 (:func:`not_found_on_record`, raised by each app's
  ``access_<entity>`` selector).
"""

from __future__ import annotations

import datetime
import hashlib
import unicodedata
from typing import Any, ClassVar, TypeVar

from django.db.models import Model, QuerySet
from django.utils import timezone
from rest_framework import serializers
from rest_framework.fields import CharField, EmailField, RegexField, SlugField, URLField
from rest_framework.request import Request

from core.errors import ApplicationError, Conflict, NotFound
from core.pagination import BoundedCursor
from security.audit.context import annotate
from services.errors import RecordErrorCode

M = TypeVar("M", bound=Model)


class PreconditionRequired(ApplicationError):
    """An update without ``If-Match`` (428): the client must say which version it changes."""

    status = 428
    title = "Precondition required"


def has_control_characters(value: str) -> bool:
    """Whether ``value`` holds a control character (Unicode category Cc)."""
    return any(unicodedata.category(character) == "Cc" for character in value)


class CleanCharField(serializers.CharField):
    """A CharField that refuses control characters (tabs and newlines included unless ``multiline``)."""

    default_error_messages: ClassVar[dict[str, Any]] = {
        "control_characters": "Control characters are not allowed.",
    }

    def __init__(self, *, multiline: bool = False, **kwargs: Any) -> None:
        self.multiline = multiline
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        """Validate as a CharField, then refuse control characters."""
        value = str(super().to_internal_value(data))
        checked = value.replace("\n", "").replace("\r", "").replace("\t", "") if self.multiline else value
        if has_control_characters(checked):
            self.fail("control_characters")
        return value


class PastDateField(serializers.DateField):
    """A date that is not in the future (and not before ``min_year``)."""

    default_error_messages: ClassVar[dict[str, Any]] = {
        "future": "This date is in the future.",
        "too_old": "This date is too far in the past.",
    }

    def __init__(self, *, min_year: int = 1880, **kwargs: Any) -> None:
        self.min_year = min_year
        super().__init__(**kwargs)

    def to_internal_value(self, value: Any) -> datetime.date:
        """Parse, then check the range."""
        parsed = super().to_internal_value(value)
        if parsed > timezone.localdate():
            self.fail("future")
        if parsed.year < self.min_year:
            self.fail("too_old")
        return parsed


def etag(instance: Model) -> str:
    """A strong ETag for a row's current version (its id and last update, hashed)."""
    stamp = getattr(instance, "updated_at", None)
    moment = stamp.isoformat() if isinstance(stamp, datetime.datetime) else ""
    return '"' + hashlib.sha256(f"{instance.pk}|{moment}".encode()).hexdigest()[:32] + '"'


def require_current(request: Request, instance: Model) -> None:
    """Refuse an update unless ``If-Match`` names the row's current ETag.

    Raises:
        PreconditionRequired: no ``If-Match``, or ``*``: an update must name the version it read.
        Conflict: the row changed since the client read it.
    """
    header = request.headers.get("If-Match", "").strip()
    if not header:
        raise PreconditionRequired(
            "Send If-Match with the ETag you read, so a concurrent change is not overwritten.",
            code=RecordErrorCode.IF_MATCH_REQUIRED,
        )
    offered = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    if "*" in offered:
        raise PreconditionRequired(
            "If-Match: * names no version. Send the ETag of the record you read.",
            code=RecordErrorCode.IF_MATCH_WILDCARD,
        )
    if etag(instance) not in offered:
        raise Conflict(
            "The record changed since you read it. Read it again and reapply your change.",
            code=RecordErrorCode.EDIT_CONFLICT,
            headers={"ETag": etag(instance)},
        )


def select_for_update(model: type[M]) -> QuerySet[M]:
    """``model``'s rows, each locked for the rest of the transaction; locks are always taken in pk order."""
    return model._default_manager.order_by("pk").select_for_update(of=("self",))


def access_one(rows: QuerySet[M], pk: Any, *, action: str, resource_type: str, what: str) -> M:
    """The row ``pk`` of ``rows`` (the community's, by schema), or the audited 404 a hidden denial also gives.

    Every ``access_<entity>`` selector ends here, so a random id and another
    community's id are refused alike and both are on record.

    Raises:
        NotFound: no such row, on record as a refused ``action`` on ``resource_type``.
    """
    found = rows.filter(pk=pk).first()
    if found is None:
        raise not_found_on_record(action, resource_type, pk, what=what)
    return found


def not_found_on_record(action: str, resource_type: str, resource_id: Any, *, what: str) -> NotFound:
    """A 404 for an id this community does not hold, on record as a refused ``action`` on that resource."""
    annotate(
        action=action, resource_type=resource_type, resource_id=str(resource_id), reasons=[RecordErrorCode.NOT_FOUND]
    )
    return NotFound.missing()  # the bytes a hidden denial gives too: ``what`` must not show


class CreatedCursor(BoundedCursor):
    """Cursor pagination, oldest first; the cursor is opaque and every filter is applied again.

    Page sizes, and the checks of ``limit`` and ``cursor``, are the kernel's (:class:`core.pagination.BoundedCursor`).
    """

    ordering = ("created_at", "id")


def not_in_community(field: str, what: str) -> serializers.ValidationError:
    """The refusal of a body whose ``field`` names a ``what`` this community does not have (a field error).

    A validation failure like any other (400), with its own code: the body fits
    the schema, and only the community's records say no; the same answer
    whether the record is missing or another community's.
    """
    detail = serializers.ErrorDetail(f"No such {what} in this community.", code=RecordErrorCode.NOT_IN_COMMUNITY)
    return serializers.ValidationError({field: [detail]})


# Unicode's control characters (category Cc), which CleanCharField refuses, and the subset a multiline one takes.
_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
_CONTROL_BUT_LINES = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f"


def text_pattern(field: Any) -> str | None:
    """The pattern of the text a field takes, as its validation has it.

    No NUL (DRF refuses it); no control character for a ``CleanCharField``
    (line breaks and tabs allowed when multiline); and, when it may not be
    blank, something besides whitespace (DRF trims it first).
    """
    if not isinstance(field, CharField) or isinstance(field, RegexField | EmailField | URLField | SlugField):
        return None
    refused = "\\u0000"
    if isinstance(field, CleanCharField):
        refused = _CONTROL_BUT_LINES if field.multiline else _CONTROL
    if field.allow_blank or not field.trim_whitespace:
        return f"^[^{refused}]*$"
    return f"^[^{refused}]*[^\\s{refused}][^{refused}]*$"
