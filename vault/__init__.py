"""Per-community keys and encrypted PHI fields; built by the key management issue."""
