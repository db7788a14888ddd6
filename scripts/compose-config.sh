#!/usr/bin/env bash
# Validate deploy/compose.yml with a Compose implementation's `config` (no container runtime needed).
# Uses `docker compose` (v2 plugin) when present, else `docker-compose`; installs Debian's
# docker-compose package when neither is there and apt-get can (root). Placeholder values only.
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=deploy/compose/validate.env
if docker compose version > /dev/null 2>&1; then
	compose=(docker compose)
else
	if ! command -v docker-compose > /dev/null; then
		if [[ $(id -u) -eq 0 ]] && command -v apt-get > /dev/null; then
			echo "installing Debian's docker-compose to validate deploy/compose.yml" >&2
			apt-get install -y -qq docker-compose > /dev/null
		else
			echo "error: no docker compose / docker-compose, and cannot install it (not root or no apt-get)" >&2
			exit 1
		fi
	fi
	compose=(docker-compose)
fi
"${compose[@]}" --env-file "$env_file" -f deploy/compose.yml config -q "$@"
echo "deploy/compose.yml: valid for $("${compose[@]}" version --short 2> /dev/null || echo compose)" >&2
