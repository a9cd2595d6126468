#!/usr/bin/env bash
# Backs up the self-sensored database with pg_dump (custom format) and FAILS LOUDLY: the dump is
# written to a temporary file beside BACKUP_FILE and only renamed to BACKUP_FILE once it is
# non-empty, readable by pg_restore and contains raw_ingestions. Otherwise: a message on stderr,
# exit code 1, and no BACKUP_FILE (an earlier backup of that name is left as it was).
#
#   DATABASE_URL=postgres://… scripts/backup.sh BACKUP_FILE     # an external server
#   DATA_DIR=./data scripts/backup.sh BACKUP_FILE               # the embedded server (must be running)
#
# For the embedded server the user and password come from DATA_DIR/postgres-credentials.json and
# the port from DATA_DIR/postgres/postmaster.pid (else EMBEDDED_PG_PORT, default 54329). pg_dump
# must be of the server's major version or newer (the embedded server is PostgreSQL 18).
set -euo pipefail

fail() {
  echo "BACKUP FAILED: $*" >&2
  exit 1
}

out=${1:-}
[ -n "$out" ] || fail "usage: scripts/backup.sh BACKUP_FILE"
command -v pg_dump >/dev/null || fail "pg_dump is not installed (install the PostgreSQL client tools)"

if [ -n "${DATABASE_URL:-}" ]; then
  url=$DATABASE_URL
else
  data_dir=${DATA_DIR:-./data}
  credentials="$data_dir/postgres-credentials.json"
  [ -r "$credentials" ] || fail "$credentials not found: set DATA_DIR (or DATABASE_URL)"
  port=${EMBEDDED_PG_PORT:-54329}
  # The running server's actual port is line 4 of postmaster.pid (EMBEDDED_PG_PORT=0 picks one).
  if [ -r "$data_dir/postgres/postmaster.pid" ]; then port=$(sed -n 4p "$data_dir/postgres/postmaster.pid"); fi
  user=$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).user)' "$credentials") ||
    fail "cannot read $credentials"
  PGPASSWORD=$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).password)' "$credentials") ||
    fail "cannot read $credentials"
  export PGPASSWORD
  url="postgresql://$user@127.0.0.1:$port/self_sensored"
fi

tmp=$(mktemp "$out.partial.XXXXXX") || fail "cannot create a file beside $out"
trap 'rm -f "$tmp"' EXIT
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
pg_dump --format=custom --no-password --dbname="$url" --file="$tmp" || fail "pg_dump exited with an error (see above)"
test -s "$tmp" || fail "pg_dump wrote an empty file"
toc=$(pg_restore --list "$tmp") || fail "pg_restore cannot read the dump"
grep -q 'TABLE DATA public raw_ingestions' <<<"$toc" || fail "the dump holds no raw_ingestions data: wrong database?"
mv "$tmp" "$out"
trap - EXIT
echo "backup written: $out ($(wc -c <"$out") bytes)"
