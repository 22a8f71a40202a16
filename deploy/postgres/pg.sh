#!/usr/bin/env bash
# Start the local PostgreSQL 15 server for tests and make the slawatch role.
#
#   deploy/postgres/pg.sh start|stop|url
#
# Uses Debian's cluster 15/main (created with pg_createcluster where it is
# missing) on port $PGPORT (default 5432), and makes role and database
# "slawatch" (password "slawatch", may create databases: tests make one each).
set -euo pipefail

version=15
cluster=main
port=${PGPORT:-5432}

as_postgres() { (cd / && runuser -u postgres -- "$@"); }  # cd: postgres may not read our folder

start() {
  command -v pg_lsclusters >/dev/null || { echo "postgres: postgresql-common is not installed" >&2; return 1; }
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version $cluster"; then
    pg_createcluster --port "$port" "$version" "$cluster" >/dev/null
  fi
  if ! pg_lsclusters -h | awk -v v=$version -v c=$cluster '$1==v && $2==c {print $4}' | grep -q online; then
    pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
  fi
  for _ in $(seq 1 60); do
    as_postgres psql -p "$port" -qtAc "select 1" >/dev/null 2>&1 && break
    sleep 0.5
  done
  as_postgres psql -p "$port" -qtAc "select 1 from pg_roles where rolname='slawatch'" | grep -q 1 \
    || as_postgres psql -p "$port" -qc "create role slawatch login createdb password 'slawatch'"
  as_postgres psql -p "$port" -qtAc "select 1 from pg_database where datname='slawatch'" | grep -q 1 \
    || as_postgres psql -p "$port" -qc "create database slawatch owner slawatch"
  echo "postgres: up on 127.0.0.1:$port ($(url))"
}

stop() { pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" stop || true; }

url() { echo "postgresql+asyncpg://slawatch:slawatch@127.0.0.1:$port/slawatch"; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
