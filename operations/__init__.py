"""Operating the platform: backups, point-in-time recovery and the proof that a backup restores."""
