"""TOTP second factor (RFC 6238) and one-time recovery codes.

Enrollment is two steps: :func:`totp_enrollment_begin` stores a new sealed
seed and returns its provisioning URI and QR code; :func:`totp_enrollment_confirm`
activates it once the user proves their authenticator shows the right code,
and returns recovery codes (shown once, stored as keyed hashes). A TOTP code
is accepted at most once: the step it belongs to must be newer than the last
accepted one.
"""

from __future__ import annotations

import base64
import io
import secrets
import time
from dataclasses import dataclass

import pyotp
import qrcode
import qrcode.image.pure
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.comparison import ascii_equal, is_ascii_digits
from core.errors import BadRequest, Conflict
from security.audit.events import platform_record
from security.errors import IdentityErrorCode
from security.identity.sealing import keyed_hashes, seal, unseal
from security.models import RecoveryCode, TotpDevice, User

TOTP_INTERVAL_SECONDS = 30
TOTP_DIGITS = 6
# Codes from one step before or after now are accepted (clock drift).
TOTP_DRIFT_STEPS = 1
_SEED_PURPOSE = "totp-seed"
_RECOVERY_PURPOSE = "recovery-code"
_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_RECOVERY_GROUP = 5


@dataclass(frozen=True)
class TotpEnrollment:
    """What the user needs to add the account to an authenticator app."""

    provisioning_uri: str
    qr_code_png: str


def _seed(device: TotpDevice) -> str:
    return unseal(device.sealed_secret, purpose=_SEED_PURPOSE, context=str(device.user_id))


def _matching_step(device: TotpDevice, code: str, now: float) -> int | None:
    """The 30-second step whose code equals ``code`` and is newer than the last accepted one."""
    if not is_ascii_digits(code, length=TOTP_DIGITS):  # '١٢٣٤٥٦'.isdigit() is true too
        return None
    totp = pyotp.TOTP(_seed(device), digits=TOTP_DIGITS, interval=TOTP_INTERVAL_SECONDS)
    current = int(now) // TOTP_INTERVAL_SECONDS
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        expected = totp.at(step * TOTP_INTERVAL_SECONDS)
        if step > device.last_used_step and ascii_equal(expected, code):
            return step
    return None


def _qr_png_data_uri(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.pure.PyPNGImage, box_size=6, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def totp_enrollment_begin(*, user: User) -> TotpEnrollment:
    """Start (or restart) TOTP enrollment; refused once a device is confirmed."""
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user).first()
        if device is not None and device.confirmed_at is not None:
            raise Conflict("A second factor is already enabled.", code=IdentityErrorCode.MFA_ALREADY_ENABLED)
        seed = pyotp.random_base32(length=32)
        sealed = seal(seed, purpose=_SEED_PURPOSE, context=str(user.pk))
        TotpDevice.objects.update_or_create(
            user=user, defaults={"sealed_secret": sealed, "confirmed_at": None, "last_used_step": 0}
        )
    uri = pyotp.TOTP(seed, digits=TOTP_DIGITS, interval=TOTP_INTERVAL_SECONDS).provisioning_uri(
        name=user.email, issuer_name=settings.MFA_TOTP_ISSUER
    )
    return TotpEnrollment(provisioning_uri=uri, qr_code_png=_qr_png_data_uri(uri))


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(2 * _RECOVERY_GROUP))
    return f"{raw[:_RECOVERY_GROUP]}-{raw[_RECOVERY_GROUP:]}"


def _normalise_recovery_code(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


def _recovery_hashes(user: User, code: str) -> list[str]:
    return keyed_hashes(f"{user.pk}:{_normalise_recovery_code(code)}", purpose=_RECOVERY_PURPOSE)


def totp_enrollment_confirm(
    *, user: User, code: str, now: float | None = None, actor_id: str | None = None
) -> list[str]:
    """Activate the pending device with a current code; return fresh recovery codes (shown once).

    The second factor is enabled with its event ``user.mfa_enroll`` in the
    platform log, in one transaction; ``actor_id`` is who enrolled it (the
    user themself unless an operator did, ``operator:<name>``).
    """
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user).first()
        if device is None:
            raise Conflict("Start TOTP enrollment first.", code=IdentityErrorCode.MFA_NOT_STARTED)
        if device.confirmed_at is not None:
            raise Conflict("A second factor is already enabled.", code=IdentityErrorCode.MFA_ALREADY_ENABLED)
        step = _matching_step(device, code, now if now is not None else time.time())
        if step is None:
            raise BadRequest("The code is not valid.", code=IdentityErrorCode.INVALID_OTP)
        device.confirmed_at = timezone.now()
        device.last_used_step = step
        device.save(update_fields=["confirmed_at", "last_used_step"])
        RecoveryCode.objects.filter(user=user).delete()
        codes = [_new_recovery_code() for _ in range(settings.MFA_RECOVERY_CODE_COUNT)]
        RecoveryCode.objects.bulk_create(
            RecoveryCode(user=user, code_hash=_recovery_hashes(user, code)[0]) for code in codes
        )
        platform_record(
            action="user.mfa_enroll", actor_id=actor_id or str(user.pk), resource_type="user", resource_id=str(user.pk)
        )
    return codes


def verify_second_factor(*, user: User, otp: str, now: float | None = None) -> bool:
    """Accept a current TOTP code (once) or an unused recovery code (consumed); never a code that is not ASCII."""
    if not otp.isascii():  # no code is; and str.upper() would fold some ('ﬀ' to 'FF') into the recovery alphabet
        return False
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user, confirmed_at__isnull=False).first()
        if device is None:
            return False
        step = _matching_step(device, otp, now if now is not None else time.time())
        if step is not None:
            device.last_used_step = step
            device.save(update_fields=["last_used_step"])
            return True
        used = RecoveryCode.objects.filter(
            user=user, code_hash__in=_recovery_hashes(user, otp), used_at__isnull=True
        ).update(used_at=timezone.now())
        return used > 0
