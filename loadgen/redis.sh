#!/usr/bin/env bash
# Starts a throwaway Redis on loopback for loadgen's `redis` baseline:
# no persistence, port 6390 (override with PORT=...). Installs redis-server
# from Debian's packages if it is missing. Stop it with: loadgen/redis.sh stop
set -euo pipefail
port="${PORT:-6390}"
if [ "${1:-}" = "stop" ]; then
  redis-cli -p "$port" shutdown nosave 2>/dev/null || true
  exit 0
fi
if ! command -v redis-server >/dev/null; then
  echo "installing redis-server (Debian package)..." >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; fi
fi
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --logfile "/tmp/loadgen-redis-$port.log" >/dev/null
for _ in $(seq 1 50); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$port" info server | grep -E '^redis_version' >&2
echo "redis://127.0.0.1:$port/"
