"""Key management commands: configure_vault (rotate_keys is in security: it records an audit event)."""
