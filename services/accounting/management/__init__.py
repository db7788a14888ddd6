"""Management commands of the accounting app."""
