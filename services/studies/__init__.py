"""Studies of a community (tenant schema)."""
