"""Production settings: refuse to start unless the configuration is complete and safe.

Every problem found is collected and reported at once, so an operator fixes a
deployment in one pass. Development components (plaintext connections to the
backing services, secrets generated on the machine, DEBUG) are refused here.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_str
from config.production_checks import configuration_problems
from config.settings.base import *  # noqa: F403

_problems = configuration_problems(os.environ)
if _problems:
    raise ImproperlyConfigured("production settings refused: " + "; ".join(_problems))

DEBUG = False
# Logs are JSON lines in production (one object a line, for the log shipper) unless LOG_FORMAT says plain.
LOG_FORMAT = env_str("LOG_FORMAT", "json")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT if LOG_FORMAT in LOG_FORMATS else "json"
ADMIN_ENABLED = env_bool("ADMIN_ENABLED", default=False)
# Every request but the health probes comes through Kong, proven (gateway/proxy.py).
REQUIRE_GATEWAY = env_bool("REQUIRE_GATEWAY", default=True)
# The service terminates TLS itself (mutual TLS from Kong); forwarded-proto
# headers are not trusted, so no SECURE_PROXY_SSL_HEADER.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=63_072_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# Mail to an SMTP server goes over STARTTLS (EMAIL_USE_TLS, base settings) or implicit TLS (port 465), one of
# the two, with the server's certificate verified (Django's default SSL context); production_checks refuses neither.
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
