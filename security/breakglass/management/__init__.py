"""Management commands of break-glass access."""
