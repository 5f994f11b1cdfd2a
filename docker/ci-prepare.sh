#!/usr/bin/env bash
# CI's container step (called by .ci/run): makes a Docker daemon available, the stand-in base images,
# and the service image built from the Dockerfile, then prints the image's name as its last line of
# stdout. Everything else goes to stderr. Exits non-zero with the reason when any of it cannot be done
# here; .ci/run then goes on without the image and the container tests skip with a message.
#
# A daemon this script starts is recorded in $KVSTASH_CI_DOCKERD_PIDFILE (when set) so that .ci/run
# can stop it at the end; a daemon that was already running is used as it is and left alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec 3>&1 1>&2

image="${KVSTASH_DOCKER_IMAGE:-kvstash:test}"
log_dir="${TMPDIR:-/tmp}/kvstash-ci-docker"
mkdir -p "$log_dir"

if ! command -v dockerd > /dev/null || ! command -v debootstrap > /dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "ci-prepare: docker or debootstrap missing and not root: cannot install them"
    exit 1
  fi
  echo "ci-prepare: installing docker.io and debootstrap"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap > "$log_dir/apt.log" 2>&1; then
    apt-get update -q > "$log_dir/apt-update.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap > "$log_dir/apt.log" 2>&1 || {
      tail -5 "$log_dir/apt.log"
      echo "ci-prepare: apt-get install docker.io debootstrap failed"
      exit 1
    }
  fi
fi

daemon_up() { docker info > /dev/null 2>&1; }

if ! daemon_up; then
  if [ "$(id -u)" != 0 ]; then
    echo "ci-prepare: no Docker daemon running and not root: cannot start one"
    exit 1
  fi
  # overlay2 where the kernel allows it (vfs copies every layer whole: minutes per build step).
  for driver in overlay2 vfs; do
    echo "ci-prepare: starting dockerd (storage driver $driver)"
    # 3>&-: the daemon must not hold the pipe that returns the image name to the caller.
    setsid dockerd --storage-driver="$driver" > "$log_dir/dockerd-$driver.log" 2>&1 < /dev/null 3>&- &
    pid=$!
    for _ in $(seq 1 60); do
      daemon_up && break
      kill -0 "$pid" 2> /dev/null || break
      sleep 0.5
    done
    if daemon_up; then
      [ -n "${KVSTASH_CI_DOCKERD_PIDFILE:-}" ] && echo "$pid" > "$KVSTASH_CI_DOCKERD_PIDFILE"
      break
    fi
    tail -5 "$log_dir/dockerd-$driver.log"
    kill "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  done
  daemon_up || { echo "ci-prepare: dockerd did not start (logs in $log_dir)"; exit 1; }
fi

if ! docker/stand-in-images.sh; then
  echo "ci-prepare: could not make the stand-in base images"
  exit 1
fi

# Testcontainers reaches the service through a published port: check that port mapping works.
probe="kvstash-ci-port-probe-$$"
docker run -d --name "$probe" -p 127.0.0.1::8000 eclipse-temurin:25-jre \
  java -m jdk.httpserver -b 0.0.0.0 -p 8000 -d /tmp > /dev/null
port_ok=false
for _ in $(seq 1 40); do
  port="$(docker port "$probe" 8000/tcp 2> /dev/null | head -n 1 | sed 's/.*://')"
  if [ -n "$port" ] && (exec 3<> "/dev/tcp/127.0.0.1/$port" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && grep -q '200 OK' <&3) 2> /dev/null; then
    port_ok=true
    break
  fi
  sleep 0.5
done
docker rm -f "$probe" > /dev/null 2>&1 || true
$port_ok || { echo "ci-prepare: a published container port cannot be reached (bridge network)"; exit 1; }

echo "ci-prepare: docker build -t $image ."
if ! docker build --network host -q -t "$image" . > "$log_dir/build.log" 2>&1; then
  tail -30 "$log_dir/build.log"
  echo "ci-prepare: docker build failed"
  exit 1
fi
echo "$image" >&3
