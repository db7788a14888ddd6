"""The security core: identity (users, memberships, tokens, MFA), the task trust boundary, audit, break-glass."""
