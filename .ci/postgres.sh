# shellcheck shell=bash
# A throwaway PostgreSQL for the tests, sourced by .ci/run (by hand: `source
# .ci/postgres.sh; postgres_start`, then `postgres_stop`). Debian's package, installed if
# missing; initdb in a temporary folder, a free loopback port, a random password. Its URL
# goes to GRADLAB_TEST_POSTGRES_URL; the tests make their own databases in it. Stopped
# and removed when the shell exits.
pg_dir=""
pg_bin=""

as_postgres() {
  # initdb refuses to run as root: a root CI runs the server as Debian's postgres user.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_stop() {
  if [ -n "$pg_dir" ] && [ -f "$pg_dir/data/postmaster.pid" ]; then
    as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null || true
  fi
  if [ -n "$pg_dir" ]; then rm -rf "$pg_dir"; fi
  pg_dir=""
}

postgres_start() {
  if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  pg_dir="$(mktemp -d /tmp/gradlab-pg.XXXXXX)"
  trap postgres_stop EXIT
  if [ "$(id -u)" = 0 ]; then chown postgres: "$pg_dir"; fi
  local port password
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  as_postgres bash -c "umask 077; echo '$password' > '$pg_dir/pw'"
  as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U gradlab --pwfile="$pg_dir/pw" \
    --auth=scram-sha-256 --no-sync >/dev/null
  as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c fsync=off" start >/dev/null
  export GRADLAB_TEST_POSTGRES_URL="postgresql+psycopg://gradlab:$password@127.0.0.1:$port/postgres"
  echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port for the tests"
}
