"""Participants of a community's studies; their PHI is stored encrypted (tenant schema)."""
