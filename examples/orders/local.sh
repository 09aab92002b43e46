#!/usr/bin/env bash
# Starts real local servers for the orders example (PostgreSQL, Redis, NATS
# and the payments provider) on free loopback ports, and registers them as
# ddi providers with the control plane (`ddi dev` must be running).
#
#   examples/orders/local.sh up      start and register
#   examples/orders/local.sh down    stop everything and forget the state
#
# Environment: ORDERS_STATE (default .cache/orders in the repository) holds
# data, logs and pid files; DDI (default: ddi on PATH, else bin/ddi) is the
# ddi binary; DDI_CONTROL_PLANE is passed on to it. Needs the Debian
# packages postgresql, redis-server and nats-server, and go.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${ORDERS_STATE:-$repo/.cache/orders}"
ddi="${DDI:-$(command -v ddi || echo "$repo/bin/ddi")}"

die() { echo "local.sh: $*" >&2; exit 1; }

need() { # binary package
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: install it with apt-get install -y $2"
}

pgbin() { # finds a PostgreSQL server binary
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    [[ -x "$d/$1" ]] && { echo "$d/$1"; return; }
  done
  die "$1 not found: install it with apt-get install -y postgresql"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# as_pg runs a command as the postgres user when we are root (PostgreSQL
# refuses to run as root).
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_port() { # port name
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "$2 is not listening on 127.0.0.1:$1 (see $state/*.log)"
}

up() {
  need redis-server redis-server
  need nats-server nats-server
  need python3 python3
  need go golang
  local initdb pg_ctl
  initdb="$(pgbin initdb)"; pg_ctl="$(pgbin pg_ctl)"
  [[ -e "$state/ports" ]] && die "already up (state in $state); run '$0 down' first"
  mkdir -p "$state"
  local pg_port redis_port nats_port pay_port pw
  pg_port=$(free_port); redis_port=$(free_port); nats_port=$(free_port); pay_port=$(free_port)
  pw="orders-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"

  # PostgreSQL: its own cluster, password authentication over TCP.
  mkdir -p "$state/pg" "$state/pgsock"
  printf '%s\n' "$pw" >"$state/pgpw"
  if [[ $(id -u) -eq 0 ]]; then
    chown -R postgres: "$state/pg" "$state/pgsock" "$state/pgpw"
    chmod o+x "$state"
  fi
  as_pg "$initdb" -D "$state/pg" -U postgres --pwfile "$state/pgpw" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --no-locale >"$state/initdb.log" 2>&1 \
    || die "initdb failed, see $state/initdb.log"
  as_pg "$pg_ctl" -D "$state/pg" -l "$state/pg/postgres.log" -w \
    -o "-p $pg_port -k $state/pgsock -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  as_pg psql -h "$state/pgsock" -p "$pg_port" -U postgres -q -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE orders LOGIN PASSWORD '$pw'" -c "CREATE DATABASE orders OWNER orders" >/dev/null

  # Redis and NATS, with a password.
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$state" \
    --requirepass "$pw" --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis.log"
  nohup nats-server -a 127.0.0.1 -p "$nats_port" --user orders --pass "$pw" \
    -P "$state/nats.pid" >"$state/nats.log" 2>&1 &

  # The payments provider.
  (cd "$here" && go build -o "$state/payments" ./payments)
  nohup "$state/payments" -listen "127.0.0.1:$pay_port" -name payments-v1 >"$state/payments.log" 2>&1 &
  echo $! >"$state/payments.pid"

  wait_port "$redis_port" redis-server
  wait_port "$nats_port" nats-server
  wait_port "$pay_port" payments
  printf 'pg=%s\nredis=%s\nnats=%s\npayments=%s\n' "$pg_port" "$redis_port" "$nats_port" "$pay_port" >"$state/ports"

  # Register the providers; secrets go through a file, never the command line.
  local secrets="$state/secret.env"
  printf 'username=orders\npassword=%s\n' "$pw" >"$secrets"
  chmod 600 "$secrets"
  "$ddi" provider add orders-pg --type postgresql --version 15.0.0 \
    --url "postgresql://127.0.0.1:$pg_port/orders" --config database=orders --config sslmode=disable --secret-file "$secrets"
  printf 'password=%s\n' "$pw" >"$state/redis-secret.env"   # Redis: the default user
  chmod 600 "$state/redis-secret.env"
  "$ddi" provider add orders-redis --type redis --version 7.0.0 --url "redis://127.0.0.1:$redis_port" --secret-file "$state/redis-secret.env"
  "$ddi" provider add orders-nats --type nats --version 2.9.0 --url "nats://127.0.0.1:$nats_port" --secret-file "$secrets"
  "$ddi" provider add payments-v1 --type http --version 1.0.0 --url "http://127.0.0.1:$pay_port"
  echo "servers up (state in $state). Now run:"
  echo "  ddi run --name orders --dep db=postgresql@* --dep cache=redis@* --dep events=nats@* --dep payments=http@* -- go -C examples/orders run ."
}

down() {
  [[ -d "$state" ]] || return 0
  local pid f
  for f in payments nats redis; do
    if [[ -f "$state/$f.pid" ]]; then
      pid=$(cat "$state/$f.pid")
      kill "$pid" 2>/dev/null || true
    fi
  done
  if [[ -f "$state/pg/postmaster.pid" ]]; then
    as_pg "$(pgbin pg_ctl)" -D "$state/pg" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [[ -e "$state/ports" ]]; then
    for f in orders-pg orders-redis orders-nats payments-v1; do
      "$ddi" provider rm "$f" >/dev/null 2>&1 || true
    done
  fi
  rm -rf "$state"
  echo "servers down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
