"""Identity (users, memberships, tokens, MFA) and, later, audit and break-glass."""
