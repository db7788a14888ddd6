"""Tests of security/breakglass/: opening emergency access, what a grant opens, notification and review."""
