"""Tests of vault/: key providers, encrypted fields, rotation, offboarding and signing."""
