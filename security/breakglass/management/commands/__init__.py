"""Break-glass commands: breakglass_alarms."""
