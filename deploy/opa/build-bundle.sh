#!/usr/bin/env bash
# Build the policy bundle the OPA sidecar loads (deploy/opa/config.yaml: bundles.authz.resource).
#
#   deploy/opa/build-bundle.sh [REVISION] [OUT]
#
# REVISION defaults to the commit at HEAD, which must hold policy/rego as it is (no uncommitted
# change to it), so that the revision OPA reports names the policy it decides with. OUT defaults
# to var/opa/bundle.tar.gz (var/ is not committed). With the opa binary on PATH this is
# `opa build`; without it, the project's own writer of the same format (manage.py
# policy_bundle). Tests stay out of the bundle either way.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ $# -ge 1 ]]; then
	revision="$1"
else
	if ! git diff --quiet HEAD -- policy/rego || [[ -n "$(git ls-files --others --exclude-standard -- policy/rego)" ]]; then
		echo "policy/rego differs from HEAD: commit it, or give the revision to name it by" >&2
		exit 1
	fi
	revision="$(git rev-parse HEAD)"
fi
out="${2:-var/opa/bundle.tar.gz}"
mkdir -p "$(dirname "$out")"

if command -v opa > /dev/null; then
	# The roots come from policy/rego/.manifest (["gateway"]); --revision overrides the manifest's.
	opa build --bundle policy/rego --revision "$revision" --ignore '*_test.rego' --output "$out"
	echo "wrote $out with opa build: revision $revision"
else
	"${PYTHON:-.venv/bin/python}" manage.py policy_bundle --revision "$revision" --out "$out"
fi
