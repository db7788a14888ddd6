#!/usr/bin/env bash
# Start the local PostgreSQL, Redis and RabbitMQ when they are down, then make
# sure the project's database exists. Used by `make run` and `make test`.
set -euo pipefail

DB_NAME="${DB_NAME:-compliance_gateway}"
PG_HOST=127.0.0.1

wait_for() {  # wait_for NAME COMMAND...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "error: $name did not come up" >&2
  return 1
}

# deploy/vault/bootstrap.sh is run by the tests: it needs curl and jq. The transaction-pooling tests start
# Debian's pgbouncer (tests/support/pgbouncer.py); the package's own service is not started.
missing=$(for tool in curl jq; do command -v "$tool" >/dev/null || echo "$tool"; done
  [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null || echo pgbouncer)
if [ -n "$missing" ]; then
  echo "installing $missing"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if ! pg_isready -h "$PG_HOST" -q 2>/dev/null; then
  echo "starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for PostgreSQL pg_isready -h "$PG_HOST" -q
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
fi

if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  wait_for RabbitMQ bash -c '(exec 3<>/dev/tcp/127.0.0.1/5672)'
fi

# Backups (make backup, the restore test) stream the cluster and its WAL over replication connections,
# which pg_hba.conf's "all" does not cover: the local development cluster gets the same trust for them.
if [ "$(psql -h "$PG_HOST" -U postgres -tAc "SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database)")" = "0" ]; then
  echo "allowing local replication connections (backups)"
  hba=$(psql -h "$PG_HOST" -U postgres -tAc "SHOW hba_file")
  printf 'host replication all 127.0.0.1/32 trust\nlocal replication all trust\n' >> "$hba"
  psql -h "$PG_HOST" -U postgres -qtAc "SELECT pg_reload_conf()" >/dev/null
fi
# A backup slot nobody reads (make run stopped) keeps WAL; past this much the server gives it up.
if [ "$(psql -h "$PG_HOST" -U postgres -tAc "SHOW max_slot_wal_keep_size")" = "-1" ]; then
  psql -h "$PG_HOST" -U postgres -qtAc "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'" >/dev/null
  psql -h "$PG_HOST" -U postgres -qtAc "SELECT pg_reload_conf()" >/dev/null
fi

if ! psql -h "$PG_HOST" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
  echo "creating database $DB_NAME"
  createdb -h "$PG_HOST" -U postgres "$DB_NAME"
fi

# The service's own database role (the tables' owner, postgres here, runs migrations): see docs/operations/database.md.
SERVICE_ROLE="${DATABASE_SERVICE_ROLE:-gateway_service}"
if ! psql -h "$PG_HOST" -U postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$SERVICE_ROLE'" | grep -q 1; then
  echo "creating database role $SERVICE_ROLE"
  psql -h "$PG_HOST" -U postgres -qc "CREATE ROLE \"$SERVICE_ROLE\" LOGIN"
fi
