#!/usr/bin/env bash
# The image's entry point: java with the flags the engine needs and memory limits derived from the
# container's memory limit (cgroup v2 memory.max or v1 memory.limit_in_bytes), then the service jar
# with any arguments given to the container (--kvstash.x.y=... options).
#
# Heap: -XX:MaxRAMPercentage=${KVSTASH_HEAP_PERCENT:-30} of the limit. Off-heap: the hot tier is
# allocated through java.lang.foreign and counts against -XX:MaxDirectMemorySize, which gets
# ${KVSTASH_DIRECT_PERCENT:-40} percent of the limit; the rest is for RocksDB (block cache, memtables),
# metaspace, thread stacks and the page cache of the memory-mapped model. Size kvstash.kv.hot-capacity
# below the direct share. Options already in JDK_JAVA_OPTIONS (-Xmx, -XX:MaxRAMPercentage,
# -XX:MaxDirectMemorySize; the Helm chart sets them explicitly) win: nothing is derived for them.
set -euo pipefail

limit=""
if [ -r /sys/fs/cgroup/memory.max ]; then
  limit="$(cat /sys/fs/cgroup/memory.max)"
elif [ -r /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
  limit="$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
fi
# "max" (v2) or a huge number (v1, no limit) mean no limit: the JVM's own defaults then.
case "$limit" in ''|max|*[!0-9]*) limit="" ;; esac
if [ -n "$limit" ] && [ "$limit" -ge 1099511627776000 ]; then
  limit=""
fi

opts=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:+ExitOnOutOfMemoryError)
given=" ${JDK_JAVA_OPTIONS:-} "
if [[ "$given" != *" -Xmx"* && "$given" != *"MaxRAMPercentage"* ]]; then
  opts+=("-XX:MaxRAMPercentage=${KVSTASH_HEAP_PERCENT:-30}")
fi
if [ -n "$limit" ] && [[ "$given" != *"MaxDirectMemorySize"* ]]; then
  opts+=("-XX:MaxDirectMemorySize=$(( limit / 100 * ${KVSTASH_DIRECT_PERCENT:-40} ))")
fi

exec java "${opts[@]}" -jar /opt/kvstash/kvstash-api.jar "$@"
