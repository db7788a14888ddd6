"""Identity endpoints on a community's host: tokens, refresh, logout, me, TOTP enrollment, JWKS.

Each view parses input, calls one action and serialises its output.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.contract import ApiContract, ProblemCodes
from core.errors import ErrorCode, NotFound
from core.http import client_bucket
from core.serializers import StrictSerializer
from policy.views import PolicyView
from security.audit.context import annotate
from security.audit.errors import AuditErrorCode
from security.errors import IdentityErrorCode
from security.identity import mfa, sessions
from security.identity.authentication import member_of
from security.identity.signing_keys import current_keyring
from security.identity.tokens import ensure_recent_sign_in
from security.models import User
from tenants.context import community_of
from tenants.errors import CommunityErrorCode
from tenants.models import Community


class TokenPairSerializer(serializers.Serializer[Any]):
    """A bearer access token and the refresh token that renews it."""

    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()


def _community(request: Request) -> Community:
    community = community_of(request)
    if community is None:
        raise NotFound("Sign in on a community's host.", code=ErrorCode.NOT_FOUND)
    return community


def _recently_signed_in_member(request: Request) -> User:
    """The member, provided they signed in recently enough to change their second factor."""
    user, claims = member_of(request)
    ensure_recent_sign_in(claims, max_age=settings.MFA_ENROLLMENT_MAX_AUTH_AGE_SECONDS)
    return user


def _token_response(pair: sessions.TokenPair) -> Response:
    return Response(TokenPairSerializer(pair).data)


class TokenApi(ApiContract, APIView):
    """``POST /api/v1/auth/token``: sign in with email, password and, when enabled, a second factor."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    operation_ids: ClassVar[Mapping[str, str]] = {"POST": "tokenCreate"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "POST": {
            400: (ErrorCode.MALFORMED_REQUEST, ErrorCode.VALIDATION_FAILED),
            401: (IdentityErrorCode.INVALID_CREDENTIALS, IdentityErrorCode.MFA_REQUIRED),
            403: (CommunityErrorCode.SUSPENDED,),
            429: (IdentityErrorCode.LOGIN_LOCKED,),
            503: (
                AuditErrorCode.UNAVAILABLE,
                IdentityErrorCode.LOGIN_UNAVAILABLE,
                IdentityErrorCode.SIGNING_KEY_UNAVAILABLE,
            ),
        }
    }

    @extend_schema_serializer(component_name="TokenRequest")
    class InputSerializer(StrictSerializer):
        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(max_length=1024, trim_whitespace=False)
        otp = serializers.CharField(max_length=32, required=False, allow_blank=True)

    @extend_schema(request=InputSerializer, responses={200: TokenPairSerializer})
    def post(self, request: Request) -> Response:
        """Exchange credentials for tokens."""
        annotate(action="auth.login", resource_type="session")
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        pair = sessions.session_start(
            community=_community(request),
            email=payload.validated_data["email"],
            password=payload.validated_data["password"],
            otp=payload.validated_data.get("otp") or None,
            ip=client_bucket(request),
        )
        return _token_response(pair)


class RefreshApi(ApiContract, APIView):
    """``POST /api/v1/auth/refresh``: rotate a refresh token."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    operation_ids: ClassVar[Mapping[str, str]] = {"POST": "tokenRefresh"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "POST": {
            401: (ErrorCode.INVALID_TOKEN, IdentityErrorCode.SESSION_EXPIRED, IdentityErrorCode.SESSION_IDLE_TIMEOUT),
            403: (CommunityErrorCode.SUSPENDED,),
            503: (AuditErrorCode.UNAVAILABLE, IdentityErrorCode.REVOCATION_UNAVAILABLE,
                  IdentityErrorCode.SIGNING_KEY_UNAVAILABLE),
        }
    }  # fmt: skip

    @extend_schema_serializer(component_name="RefreshRequest")
    class InputSerializer(StrictSerializer):
        refresh = serializers.CharField(max_length=256)

    @extend_schema(request=InputSerializer, responses={200: TokenPairSerializer})
    def post(self, request: Request) -> Response:
        """Use up the refresh token and return a new pair."""
        annotate(action="auth.refresh", resource_type="session")
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        pair = sessions.session_refresh(community=_community(request), refresh_token=payload.validated_data["refresh"])
        return _token_response(pair)


class LogoutApi(PolicyView[None]):
    """``POST /api/v1/auth/logout``: revoke this session now."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "self.logout"}
    operation_ids: ClassVar[Mapping[str, str]] = {"POST": "signOut"}
    policy_resource_type = "self"

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        """Revoke the access token, its session and its refresh tokens."""
        _, claims = member_of(request)
        sessions.session_end(claims=claims)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(PolicyView[None]):
    """``GET /api/v1/me``: who the caller is in this community."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "self.read"}
    operation_ids: ClassVar[Mapping[str, str]] = {"GET": "meRead"}
    policy_resource_type = "self"

    @extend_schema_serializer(component_name="Me")
    class OutputSerializer(serializers.Serializer[Any]):
        user_id = serializers.UUIDField()
        email = serializers.EmailField()
        community = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())
        mfa_enabled = serializers.BooleanField()
        amr = serializers.ListField(child=serializers.CharField())
        auth_time = serializers.IntegerField()

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        """Describe the authenticated member."""
        user, claims = member_of(request)
        data = {
            "user_id": user.pk,
            "email": user.email,
            "community": claims.community,
            "roles": list(claims.roles),
            "mfa_enabled": user.mfa_enabled,
            "amr": list(claims.amr),
            "auth_time": claims.auth_time,
        }
        return Response(self.OutputSerializer(data).data)


class TotpEnrollApi(PolicyView[None]):
    """``POST /api/v1/auth/mfa/totp``: start TOTP enrollment."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "self.mfa_enroll"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "POST": {401: (IdentityErrorCode.RECENT_SIGN_IN_REQUIRED,), 409: (IdentityErrorCode.MFA_ALREADY_ENABLED,)}
    }
    policy_resource_type = "self"

    @extend_schema_serializer(component_name="TotpEnrollment")
    class OutputSerializer(serializers.Serializer[Any]):
        provisioning_uri = serializers.CharField()
        qr_code_png = serializers.CharField(help_text="data: URI of a PNG image of the provisioning URI")

    @extend_schema(request=None, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        """Create a pending authenticator and return how to add it."""
        enrollment = mfa.totp_enrollment_begin(user=_recently_signed_in_member(request))
        return Response(self.OutputSerializer(enrollment).data, status=status.HTTP_201_CREATED)


class TotpConfirmApi(PolicyView[None]):
    """``POST /api/v1/auth/mfa/totp/confirm``: activate TOTP with a current code."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "self.mfa_enroll"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "POST": {
            400: (IdentityErrorCode.INVALID_OTP,),
            401: (IdentityErrorCode.RECENT_SIGN_IN_REQUIRED,),
            409: (IdentityErrorCode.MFA_NOT_STARTED, IdentityErrorCode.MFA_ALREADY_ENABLED),
        }
    }
    policy_resource_type = "self"

    @extend_schema_serializer(component_name="TotpConfirmation")
    class InputSerializer(StrictSerializer):
        code = serializers.CharField(max_length=16)

    @extend_schema_serializer(component_name="RecoveryCodes")
    class OutputSerializer(serializers.Serializer[Any]):
        recovery_codes = serializers.ListField(child=serializers.CharField())

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request: Request) -> Response:
        """Activate the pending authenticator; the recovery codes are shown this once."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        codes = mfa.totp_enrollment_confirm(
            user=_recently_signed_in_member(request), code=payload.validated_data["code"]
        )
        return Response(self.OutputSerializer({"recovery_codes": codes}).data)


class JwksApi(ApiContract, APIView):
    """``GET /.well-known/jwks.json``: the public keys that verify access tokens."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(responses={200: inline_serializer("Jwks", {"keys": serializers.ListField()})})
    def get(self, request: Request) -> Response:
        """Publish current and still-valid previous keys."""
        return Response(current_keyring().jwks(time.time()), headers={"Cache-Control": "public, max-age=300"})
