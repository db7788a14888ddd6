#!/usr/bin/env python
"""Django's command-line utility; development settings unless DJANGO_SETTINGS_MODULE says otherwise."""

import os
import sys


def main() -> None:
    """Run a management command; those that create, migrate or drop schemas connect as the tables' owner."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.development")
    from config.database_roles import OWNER_COMMANDS  # noqa: PLC0415 - no Django needed

    if len(sys.argv) > 1 and sys.argv[1] in OWNER_COMMANDS:
        os.environ.setdefault("DATABASE_ROLE", "owner")
    from django.core.management import execute_from_command_line  # noqa: PLC0415 - after the settings default

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
