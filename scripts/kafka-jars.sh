#!/usr/bin/env bash
# Fetch the jars of an Apache Kafka broker (KRaft) from Maven Central into a
# cache directory, for the integration tests. No tarball, no Docker: the
# class path is assembled by Maven from org.apache.kafka:kafka_2.13 plus a
# log4j2 binding for SLF4J 1.7 (see scripts/kafka/pom.xml).
#
# Usage: scripts/kafka-jars.sh [--force]
# Environment:
#   BRW_KAFKA_VERSION  Kafka version (default 4.1.1)
#   BRW_LOG4J_VERSION  log4j2 version (default: the one that Kafka version
#                      brings itself)
#   BRW_CACHE_DIR      cache root (default $HOME/.cache/bsg-report-worker)
#   MAVEN_REPO_LOCAL   Maven local repository (default: Maven's, ~/.m2)
#
# Idempotent: a stamp file marks a complete libs dir; a second run does
# nothing. The last line on stdout is the libs directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/kafka/pom.xml"
force=0
case "${1:-}" in
--force) force=1 ;;
"") ;;
-h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 0
    ;;
*)
    echo "kafka-jars.sh: unknown argument: $1" >&2
    exit 2
    ;;
esac

version="${BRW_KAFKA_VERSION:-4.1.1}"
if [[ -n "${BRW_LOG4J_VERSION:-}" ]]; then
    log4j="$BRW_LOG4J_VERSION"
else
    # The log4j2 version each Kafka line depends on (kafka-server's POM),
    # so that the binding matches log4j-api/log4j-core exactly.
    case "$version" in
    3.* | 4.0.* | 4.1.*) log4j=2.24.3 ;;
    4.2.*) log4j=2.25.3 ;;
    *) log4j=2.25.4 ;;
    esac
fi

cache_root="${BRW_CACHE_DIR:-$HOME/.cache/bsg-report-worker}"
dir="$cache_root/kafka-$version"
libs="$dir/libs"
stamp="$dir/.complete"
# The stamp records what was fetched; a change of the pom refetches.
want="kafka=$version log4j=$log4j pom=$(sha256sum "$pom" | cut -c1-16)"

if ((!force)) && [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] &&
    compgen -G "$libs/kafka_2.13-$version.jar" >/dev/null; then
    echo "kafka-jars.sh: Kafka $version jars already in $libs" >&2
    echo "$libs"
    exit 0
fi

for tool in mvn java; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "kafka-jars.sh: '$tool' not found; run scripts/install-deps.sh" >&2
        exit 1
    fi
done

mkdir -p "$dir"
tmp="$(mktemp -d "$dir/libs.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

mvn_args=(-q -B -f "$pom"
    -Dstyle.color=never
    "-Dkafka.version=$version" "-Dlog4j.version=$log4j"
    dependency:copy-dependencies
    "-DoutputDirectory=$tmp" -DincludeScope=runtime)
if [[ -n "${MAVEN_REPO_LOCAL:-}" ]]; then
    mvn_args+=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL")
fi

echo "kafka-jars.sh: fetching Kafka $version (log4j $log4j) from Maven Central" >&2
start=$(date +%s)
# mvn -q prints only errors; send them to stderr so stdout stays clean, and
# strip the colour codes Maven 3.8 prints even in batch mode.
if ! mvn "${mvn_args[@]}" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2; then
    echo "kafka-jars.sh: mvn failed (Maven Central reachable?)" >&2
    exit 1
fi

if [[ ! -f "$tmp/kafka_2.13-$version.jar" ]]; then
    echo "kafka-jars.sh: kafka_2.13-$version.jar missing after mvn" >&2
    exit 1
fi
if ls "$tmp" | grep -q '^slf4j-api-2\.'; then
    echo "kafka-jars.sh: slf4j-api 2.x on the class path; the log4j-slf4j-impl" \
        "binding would not be found (use log4j-slf4j2-impl)" >&2
    exit 1
fi

rm -rf "$libs"
mv "$tmp" "$libs"
trap - EXIT
echo "$want" >"$stamp"
echo "kafka-jars.sh: $(ls "$libs" | wc -l) jars in $(($(date +%s) - start)) s" >&2
echo "$libs"
