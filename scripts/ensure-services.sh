#!/usr/bin/env bash
# Make sure Redis and RabbitMQ answer on loopback; start the local servers if they are down.
# Skipped for a service whose URL is given in the environment (someone else runs it), and when
# Docker is usable the test suite can start throwaway containers instead (tests/conftest.py).
set -u
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 "$2"); do port_open "$1" && return 0; sleep 1; done
  return 1
}

if [ -z "${PARLEY_REDIS_URL:-}" ] && ! port_open 6379; then
  if command -v redis-server >/dev/null; then
    echo "ensure-services: starting redis-server"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    wait_port 6379 20 || echo "ensure-services: redis did not come up" >&2
  else
    echo "ensure-services: no redis on 6379 and no redis-server; tests will try Docker" >&2
  fi
fi

if [ -z "${PARLEY_AMQP_URL:-}" ] && ! port_open 5672; then
  if command -v rabbitmq-server >/dev/null; then
    echo "ensure-services: starting rabbitmq-server"
    rabbitmq-server -detached || true
    wait_port 5672 90 || echo "ensure-services: rabbitmq did not come up" >&2
  else
    echo "ensure-services: no rabbitmq on 5672 and no rabbitmq-server; tests will try Docker" >&2
  fi
fi
exit 0
