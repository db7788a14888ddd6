"""Gateway commands: kong_config."""
