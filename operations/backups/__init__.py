"""Base backups and WAL for point-in-time recovery, sealed under the key provider's backup key, and their proof.

``manage.py backup`` takes a base backup (``pg_basebackup``) and archives the
WAL after it (``pg_receivewal`` from a replication slot); every file is sealed
before it reaches the store. ``manage.py restore_test`` restores the latest
backup into a scratch cluster and proves it (:mod:`operations.backups.proof`).
"""
