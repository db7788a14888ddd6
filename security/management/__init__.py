"""Management commands of the security app."""
