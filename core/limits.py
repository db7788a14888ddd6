"""The service's limits on what a request may be: one name each, read by whatever enforces or documents it.

gunicorn (``config/gunicorn.py`` and its worker, :mod:`config.gunicorn_worker`)
bounds the request line and the header fields; Django's settings the body and
the number of parameters; the cursor paginators (:mod:`core.pagination`) the
page size and the cursor; the OpenAPI schema documents each bound from the same
name (``maximum``, ``maxLength``). Each refusal is an RFC 9457 problem document
with the status and code given here, whichever layer refuses
(docs/researchers.md, "Limits").

This module imports nothing at all: gunicorn's configuration reads it before
any monkey-patching, without Django. The names are a contract: rename none.
"""

from __future__ import annotations

from typing import Final

# The request line (method, target and version, without its CRLF), in bytes: longer is 414
# ``request_line_too_long`` (gunicorn's ``limit_request_line``; gunicorn's own ceiling is 8190).
REQUEST_LINE_MAX_BYTES: Final = 4094

# One header field line (name, colon, value and its CRLF), in bytes: longer is 431
# ``header_fields_too_large`` (gunicorn's ``limit_request_field_size``).
HEADER_FIELD_MAX_BYTES: Final = 8190

# Header fields in one request: more is 431 ``header_fields_too_large`` (gunicorn's ``limit_request_fields``).
HEADER_FIELDS_MAX: Final = 100

# A request body, in bytes: larger is 413 ``payload_too_large`` (the default of ``DATA_UPLOAD_MAX_MEMORY_SIZE``,
# which the environment may lower or raise; Kong's request-size-limiting is set to the setting, not to this).
BODY_MAX_BYTES: Final = 1_048_576

# Query-string parameters (and form fields) of one request: more is 400 ``too_many_parameters``
# (Django's ``DATA_UPLOAD_MAX_NUMBER_FIELDS``).
QUERY_PARAMETERS_MAX: Final = 1000

# The paging parameters of every list (a query parameter of a GET list, a member of a POST search's body).
PAGE_SIZE_PARAMETER: Final = "limit"
CURSOR_PARAMETER: Final = "cursor"

# ``limit``: a whole number in ASCII digits, no sign, no leading zero, from PAGE_SIZE_MIN to the list's maximum;
# anything else is 400 ``invalid_page_size``, never clamped. The research lists (studies, participants, their
# search, observations) default to PAGE_SIZE_DEFAULT; the audit event list has its own bounds.
PAGE_SIZE_MIN: Final = 1
PAGE_SIZE_DEFAULT: Final = 50
PAGE_SIZE_MAX: Final = 200
AUDIT_PAGE_SIZE_DEFAULT: Final = 100
AUDIT_PAGE_SIZE_MAX: Final = 1000

# ``cursor``: what a page's ``next`` or ``previous`` said, at most this many characters (a cursor the service
# makes is under 100); longer, not one the service made, or naming no position of the list is 400
# ``invalid_cursor``. A multiple of 4: a longer cursor can still be well-formed base64.
CURSOR_MAX_CHARS: Final = 200
