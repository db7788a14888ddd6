"""The WSGI application ``make bench``'s load run serves (``bench/load.py``): the secured page and the bare view.

One gunicorn, one application: ``/bare/...`` goes to the bare view of
:mod:`bench.research` (no middleware, no token, no policy, no audit) inside the
scratch community's schema; every other path goes to the project's own WSGI
handler with the whole middleware stack. The parent process (``bench/load.py``)
seeds the community and tells the workers, by environment, which database and
which JWT signing keys it used (the test settings make a fresh key directory in
every process).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django_tenants.utils import schema_context

import bench.research  # django.setup() with the test settings, and the bare view

BARE_PREFIX = "/bare"

settings.DATABASES["default"]["NAME"] = os.environ["BENCH_LOAD_DATABASE_NAME"]
settings.JWT_SIGNING_KEYS_DIR = Path(os.environ["BENCH_LOAD_JWT_KEYS_DIR"])
# A greenlet's connection dies with it: none kept (the gevent branch's settings read this variable themselves).

_secured = WSGIHandler()
_bare = bench.research.BareHandler()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Route ``/bare/...`` to the bare view in the community's schema, anything else to the secured stack."""
    path: str = environ.get("PATH_INFO", "")
    if path.startswith(BARE_PREFIX + "/"):
        environ["PATH_INFO"] = path[len(BARE_PREFIX) :]
        with schema_context(bench.research.SLUG):
            return _bare(environ, start_response)
    return _secured(environ, start_response)
