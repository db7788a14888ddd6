"""Management commands of the policy app."""
