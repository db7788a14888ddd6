"""Consents: what each participant agreed to, and withdrawals."""
