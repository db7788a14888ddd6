"""``mfa_enroll --email E``: give an account TOTP from the server's shell (platform staff, recovery).

Prints the provisioning URI and a terminal QR code, reads the first code from
standard input, then prints the recovery codes once. Community members
normally enroll through ``POST /api/v1/auth/mfa/totp``.
"""

from __future__ import annotations

import sys
from typing import Any

import qrcode
from django.core.management.base import CommandError, CommandParser

from core.commands import OperatorCommand
from core.errors import NotFound
from security.errors import IdentityErrorCode
from security.identity.mfa import totp_enrollment_begin, totp_enrollment_confirm
from security.models import User, normalize_email


class Command(OperatorCommand):
    """Enroll a TOTP authenticator for a user, interactively."""

    help = "Enroll a TOTP authenticator for a user: shows a QR code, reads the first code, prints recovery codes."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --email."""
        parser.add_argument("--email", required=True)

    def run(self, **options: Any) -> None:
        """Begin, show, read the code, confirm."""
        user = User.objects.filter(email=normalize_email(options["email"])).first()
        if user is None:
            raise NotFound("no user with this email", code=IdentityErrorCode.USER_NOT_FOUND)
        enrollment = totp_enrollment_begin(user=user)
        code = qrcode.QRCode(border=1)
        code.add_data(enrollment.provisioning_uri)
        code.print_ascii(out=self.stdout, invert=True)
        self.stdout.write(f"Or enter this URI in the authenticator: {enrollment.provisioning_uri}")
        self.stdout.write("Code shown by the authenticator: ", ending="")
        self.stdout.flush()
        answer = sys.stdin.readline().strip()
        if not answer:
            raise CommandError("no code on standard input; the enrollment stays pending")
        recovery_codes = totp_enrollment_confirm(user=user, code=answer, actor_id=self.actor_id)
        self.stdout.write(
            f"\nSecond factor enabled for {user.email}. Recovery codes (each works once, shown only now):"
        )
        for recovery_code in recovery_codes:
            self.stdout.write(f"  {recovery_code}")
