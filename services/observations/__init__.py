"""Observations about participants (coded values; date and note encrypted)."""
