"""Management commands of de-identified exports."""
