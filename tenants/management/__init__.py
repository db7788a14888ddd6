"""Management commands of the communities app."""
