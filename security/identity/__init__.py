"""Identity: signing keys, access and refresh tokens, revocation, login throttling, MFA."""
