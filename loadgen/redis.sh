#!/usr/bin/env bash
# Starts a throwaway Redis on loopback for loadgen's `redis` baseline: no
# persistence, port 6390 (PORT=... to choose another). Installs redis-server
# from Debian's packages if it is missing.
#
#   loadgen/redis.sh          start one; prints its URL (pass it to --redis-url)
#   loadgen/redis.sh stop     stop the one this script started on PORT
#
# A port that something else already answers on is refused (it could be
# someone's Redis, which loadgen would fill with keys): choose another PORT,
# or set REUSE=1 to use what answers there anyway.
set -euo pipefail
port="${PORT:-6390}"
pidfile="/tmp/loadgen-redis-$port.pid"
if [ "${1:-}" = "stop" ]; then
  if [ -f "$pidfile" ]; then
    redis-cli -p "$port" shutdown nosave 2>/dev/null || kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  else
    echo "no Redis started by this script on port $port" >&2
  fi
  exit 0
fi
if ! command -v redis-server >/dev/null; then
  echo "installing redis-server (Debian package)..." >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; fi
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  if [ "${REUSE:-0}" = 1 ]; then
    echo "reusing what answers on port $port (REUSE=1)" >&2
    echo "redis://127.0.0.1:$port/"
    exit 0
  fi
  echo "port $port is taken; choose another (PORT=6391 $0) or set REUSE=1 to use it" >&2
  exit 1
fi
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$pidfile" --logfile "/tmp/loadgen-redis-$port.log" >/dev/null
for _ in $(seq 1 50); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$port" info server | grep -E '^redis_version' >&2
echo "redis://127.0.0.1:$port/"
