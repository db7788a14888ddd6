"""The served API the contract tests hold to its schema.

The server is the image's entry point (``entrypoint api``: gunicorn with the committed gevent configuration) on a
fresh database that ``entrypoint migrate`` migrated and ``seed_demo`` seeded with the demo communities alpha and
beta, one user per role: the ``stack`` fixture of tests/deploy/conftest.py, re-exported here so that these tests
start the same processes the image does rather than a server of their own. Each test module gets its own.
"""

from __future__ import annotations

from tests.deploy.conftest import stack

__all__ = ["stack"]
