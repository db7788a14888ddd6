"""Tests that cross packages and run the project the way its users do (scripts against a served app)."""
