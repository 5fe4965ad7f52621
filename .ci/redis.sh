#!/usr/bin/env bash
# The Redis the test suite counts throttles in (TEST_REDIS_URL, default redis://127.0.0.1:6379/0).
# When something answers there it is left alone. Otherwise Debian's redis-server is installed if
# missing (its own service, where systemd would start one, is stopped) and one is started for
# the tests on the URL's port: bound to 127.0.0.1 only, daemonized, keeping nothing on disk.
# Stop it with `redis-cli -p PORT shutdown nosave`.
set -euo pipefail

url="${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
address="${url#*://}"
address="${address##*@}"   # user:password@
address="${address%%/*}"   # /database
host="${address%%:*}"
port=6379
[[ "$address" == *:* ]] && port="${address##*:}"
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

answers() {
  # PING by hand (bash's /dev/tcp): redis-cli may not be installed yet. Any reply, even NOAUTH
  # from a Redis with a password, means a Redis is there.
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "PING\r\n" >&3
    IFS= read -r -t 2 reply <&3
    [[ "$reply" == [+-]* ]]' "$host" "$port" 2>/dev/null
}

if answers; then
  exit 0
fi
case "$host" in
  127.0.0.1 | localhost) ;;
  *)
    echo "nothing answers at $url, which is not on this machine: start that Redis, or unset TEST_REDIS_URL" >&2
    exit 1
    ;;
esac
if ! command -v redis-server >/dev/null; then
  echo "== installing Debian's redis-server for the throttle tests"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
  if [ -d /run/systemd/system ]; then $sudo systemctl disable --now redis-server.service; fi
  if answers; then exit 0; fi  # its service, started by the package where systemd does not run
fi

echo "== starting Redis for the tests on 127.0.0.1:$port"
run="${TMPDIR:-/tmp}/event-photos-test-redis-$port"
mkdir -p "$run"
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
  --dir "$run" --pidfile "$run/redis.pid" --logfile "$run/redis.log"
for _ in $(seq 1 50); do
  if answers; then exit 0; fi
  sleep 0.1
done
echo "Redis did not start on 127.0.0.1:$port: see $run/redis.log" >&2
exit 1
