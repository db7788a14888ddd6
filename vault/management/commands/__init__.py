"""Key management commands: rotate_keys, configure_vault."""
