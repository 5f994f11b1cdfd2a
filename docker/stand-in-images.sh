#!/usr/bin/env bash
# Builds local stand-ins for the public base images the Dockerfile names (eclipse-temurin:25-jdk and
# eclipse-temurin:25-jre) on a machine that reaches no image registry, so the real Dockerfile builds
# unchanged: a Debian minbase root filesystem (debootstrap) plus this machine's JDK 25 under
# /opt/java/openjdk (the JDK as is for :25-jdk, a jlink image of all its modules for :25-jre),
# imported with `docker import` under the public names. JAVA_HOME, PATH and LANG are set as the
# real images set them. An image of that name that is not a stand-in (no io.kvstash.stand-in label),
# e.g. the real one pulled from a registry, is left alone.
#
# Needs root, docker, debootstrap (apt-get install debootstrap) and a JDK 25 in JAVA_HOME.
# Usage: docker/stand-in-images.sh [--force]
set -euo pipefail

force=false
[ "${1:-}" = "--force" ] && force=true
java_home="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
suite="${STAND_IN_SUITE:-bookworm}"
mirror="${STAND_IN_MIRROR:-http://deb.debian.org/debian}"

if ! "$java_home/bin/java" -version 2>&1 | grep -q 'version "2[5-9]'; then
  echo "stand-in-images: no JDK 25 in $java_home (set JAVA_HOME)" >&2
  exit 1
fi

needed=()
for tag in eclipse-temurin:25-jdk eclipse-temurin:25-jre; do
  if docker image inspect "$tag" > /dev/null 2>&1; then
    label="$(docker image inspect -f '{{ index .Config.Labels "io.kvstash.stand-in" }}' "$tag" 2>/dev/null || true)"
    if [ "$label" != "true" ]; then
      echo "stand-in-images: $tag exists and is not a stand-in: left alone"
      continue
    fi
    if ! $force; then
      echo "stand-in-images: $tag (stand-in) already there"
      continue
    fi
  fi
  needed+=("$tag")
done
[ ${#needed[@]} -eq 0 ] && exit 0

work="$(mktemp -d /tmp/kvstash-stand-in.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
echo "stand-in-images: debootstrap --variant=minbase $suite (a few minutes)"
debootstrap --variant=minbase "$suite" "$root" "$mirror" > "$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

import() { # tag
  tar -C "$root" -c . | docker import \
    --change 'ENV JAVA_HOME=/opt/java/openjdk' \
    --change 'ENV PATH=/opt/java/openjdk/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8 LC_ALL=C.UTF-8' \
    --change 'LABEL io.kvstash.stand-in=true' \
    --change 'CMD ["jshell"]' \
    - "$1" > /dev/null
  echo "stand-in-images: imported $1"
}

# Every module of the JDK but its development tools, as the real JRE images carry.
jre_modules() {
  "$java_home/bin/java" --list-modules | sed 's/@.*//' \
    | grep -v -E '^(jdk\.(compiler|javadoc|jdeps|jlink|jpackage|jshell|jartool|jdi|jstatd|hotspot\.agent|editpad|internal\.ed|internal\.le|internal\.opt|jconsole|jcmd|jdwp\.agent|attach|internal\.jvmstat))$' \
    | paste -sd, -
}

mkdir -p "$root/opt/java"
for tag in "${needed[@]}"; do
  rm -rf "$root/opt/java/openjdk"
  case "$tag" in
    # -L: the JDK of a Debian package links its cacerts to /etc/ssl/certs, absent from the rootfs.
    *-jdk) cp -rL "$java_home" "$root/opt/java/openjdk" ;;
    *-jre) "$java_home/bin/jlink" --add-modules "$(jre_modules)" --strip-debug --no-header-files \
             --no-man-pages --output "$root/opt/java/openjdk" ;;
  esac
  import "$tag"
done
