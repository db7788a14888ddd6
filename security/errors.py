"""Error codes of the identity and security app."""

from __future__ import annotations

from enum import StrEnum


class IdentityErrorCode(StrEnum):
    """Why an identity operation was refused. Token failures share one code on purpose."""

    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_LOGIN = "invalid_login"  # the admin sign-in form's code (Django's own name for it)
    INVALID_TOKEN = "invalid_token"  # an error code, not a secret  # noqa: S105  # nosec B105
    MFA_REQUIRED = "mfa_required"
    RECENT_SIGN_IN_REQUIRED = "recent_sign_in_required"
    SESSION_IDLE_TIMEOUT = "session_idle_timeout"  # not refreshed for SESSION_IDLE_TIMEOUT_SECONDS
    SESSION_EXPIRED = "session_expired"  # SESSION_MAX_AGE_SECONDS since the sign-in
    LOGIN_LOCKED = "login_locked"
    INVALID_OTP = "invalid_otp"
    MFA_ALREADY_ENABLED = "mfa_already_enabled"
    MFA_NOT_STARTED = "mfa_enrollment_not_started"
    SIGNING_KEY_UNAVAILABLE = "signing_key_unavailable"
    REVOCATION_UNAVAILABLE = "revocation_unavailable"
    LOGIN_UNAVAILABLE = "login_unavailable"
    INVALID_EMAIL = "invalid_email"
    WEAK_PASSWORD = "weak_password"  # an error code, not a secret  # noqa: S105  # nosec B105
    USER_EXISTS = "user_exists"
    USER_NOT_FOUND = "user_not_found"
    INVALID_ROLE = "invalid_role"
    MEMBERSHIP_EXISTS = "membership_exists"
    MEMBERSHIP_NOT_FOUND = "membership_not_found"
    INVALID_AFFILIATION = "invalid_affiliation"
    MFA_NOT_ENABLED = "mfa_not_enabled"
