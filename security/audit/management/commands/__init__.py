"""Audit commands: audit_verify."""
