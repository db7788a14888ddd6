"""Community lifecycle commands."""
