#!/bin/sh
# Run once by the postgres image when it initialises its data directory (docker-entrypoint-initdb.d).
# Backups stream the cluster and its WAL over replication connections from the worker
# (docs/operations/backups.md): the service's role may open them from the compose network, with its
# password. initdb's own replication lines cover local connections only.
set -eu
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "${PGDATA}/pg_hba.conf"
