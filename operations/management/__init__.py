"""The operations app's management commands."""
