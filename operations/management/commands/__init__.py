"""``backup`` and ``restore_test``."""
