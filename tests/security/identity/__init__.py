"""Tests of security/identity/: sign-in, tokens, sessions, MFA, signing keys, throttling, member cache."""
