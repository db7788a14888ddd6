"""Management commands of the vault app."""
