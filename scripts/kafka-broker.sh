#!/usr/bin/env bash
# Run a single-node Apache Kafka broker (KRaft, broker+controller in one JVM)
# on 127.0.0.1, for development and demos. The jars come from Maven Central
# through scripts/kafka-jars.sh. (The integration tests start their own
# broker with tests/integration/harness.py, which writes the same config.)
#
# Usage: scripts/kafka-broker.sh start|stop|status|restart|reset [options]
#   start    format the data dir if new, start the broker in the background,
#            wait until it is ready, print its bootstrap address (host:port)
#   stop     SIGTERM (clean shutdown), SIGKILL after 30 s
#   status   print the bootstrap address and exit 0 if running, else exit 1
#   restart  stop, then start on the same data dir and ports
#   reset    stop, then delete the data dir (the next start is a fresh one)
# Options (or environment):
#   --dir DIR              BRW_KAFKA_DIR   (default ${TMPDIR:-/tmp}/brw-kafka)
#   --port N               BRW_KAFKA_PORT  (default: a free port)
#   --controller-port N    BRW_KAFKA_CONTROLLER_PORT (default: a free port)
#   --security             BRW_KAFKA_SECURITY=1: also open TLS and SASL
#                          listeners (chosen at format time, like the ports):
#                          SASL_SSL (SCRAM-SHA-512 and PLAIN), MTLS (TLS with
#                          a required client certificate) and BADNAME (TLS
#                          with a certificate for another name), certificates
#                          from scripts/kafka-pki.sh in DIR/pki; the same
#                          listeners as the tests' (harness.py BrokerSecurity).
#                          `start` and `status` print a worker's flags for
#                          each on stderr.
#   BRW_KAFKA_SASL_USER, BRW_KAFKA_SASL_PASSWORD  the SCRAM and PLAIN user
#                          of --security (default brw / brw-secret)
#   BRW_KAFKA_AUTO_CREATE  auto.create.topics.enable (default true)
#   BRW_KAFKA_JVM_OPTS     JVM flags (default: small heap, fast start)
#   BRW_KAFKA_READY_TIMEOUT seconds to wait for readiness (default 90)
#   BRW_KAFKA_VERSION, BRW_CACHE_DIR: see scripts/kafka-jars.sh
# Ports are fixed when the dir is first formatted (the controller's address
# is part of the stored quorum); a restart reuses them.
# Files in DIR: server.properties, data/, broker.log, broker.pid, pki/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log4j_config="$here/kafka/log4j2.properties"

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
dir="${BRW_KAFKA_DIR:-${TMPDIR:-/tmp}/brw-kafka}"
port="${BRW_KAFKA_PORT:-}"
cport="${BRW_KAFKA_CONTROLLER_PORT:-}"
security="${BRW_KAFKA_SECURITY:-0}"
sasl_user="${BRW_KAFKA_SASL_USER:-brw}"
sasl_password="${BRW_KAFKA_SASL_PASSWORD:-brw-secret}"
while [[ $# -gt 0 ]]; do
    case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --controller-port) cport="$2"; shift 2 ;;
    --security) security=1; shift ;;
    *) echo "kafka-broker.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
say() { echo "kafka-broker.sh: $*" >&2; }

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
props="$dir/server.properties"
pidfile="$dir/broker.pid"
logfile="$dir/broker.log"

# JVM flags: see docs/testing.md for the measurements behind them.
read -r -a jvm_opts <<<"${BRW_KAFKA_JVM_OPTS:--Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true}"

free_port() {
    # Bind to port 0 and report what the kernel chose.
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

prop() { sed -n "s/^$1=//p" "$props" 2>/dev/null | tail -1; }

broker_pid() {
    # The pid in the pid file, if that process is this dir's broker.
    local pid
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $props" || return 1
    echo "$pid"
}

# The port of listener $1 in the stored config ("" when it has none).
listener_port() { prop listeners | tr ',' '\n' | sed -n "s#^$1://127.0.0.1:##p"; }

bootstrap() { echo "127.0.0.1:$(listener_port PLAINTEXT)"; }

# With --security: a worker's flags for each extra listener, on stderr.
print_security() {
    local p ca="$dir/pki/ca.pem"
    p="$(listener_port SASL_SSL)"
    [[ -n "$p" ]] || return 0
    say "SASL_SSL (SCRAM-SHA-512 or PLAIN): --brokers=127.0.0.1:$p" \
        "--kafka.security.protocol=SASL_SSL --kafka.sasl.mechanisms=SCRAM-SHA-512" \
        "--kafka.sasl.username=$sasl_user --kafka.sasl.password=... --kafka.ssl.ca.location=$ca"
    say "MTLS: --brokers=127.0.0.1:$(listener_port MTLS) --kafka.security.protocol=SSL" \
        "--kafka.ssl.ca.location=$ca --kafka.ssl.certificate.location=$dir/pki/client.crt" \
        "--kafka.ssl.key.location=$dir/pki/client.key"
    say "BADNAME (a certificate for kafka.wrong.example): --brokers=127.0.0.1:$(listener_port BADNAME)" \
        "--kafka.security.protocol=SSL --kafka.ssl.ca.location=$ca"
}

cluster_id() {
    # As kafka.tools.StorageTool random-uuid: URL-safe base64 of 16 random
    # bytes, no padding, not starting with '-'.
    local id
    while :; do
        id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        [[ "$id" != -* ]] && { echo "$id"; return; }
    done
}

write_props() {
    cat >"$props" <<EOF
# Written by scripts/kafka-broker.sh; keep in step with
# tests/integration/harness.py (KafkaBroker.properties).
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
auto.create.topics.enable=${BRW_KAFKA_AUTO_CREATE:-true}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.cleaner.dedupe.buffer.size=4194304
log.initial.task.delay.ms=1000
EOF
    ((security)) || return 0
    # The extra listeners (harness.py BrokerSecurity): PEM stores, the PLAIN
    # user in the listener's JAAS config, the SCRAM user in the metadata
    # (format --add-scram).
    local extra="SASL_SSL://127.0.0.1:$sasl_port,MTLS://127.0.0.1:$mtls_port,BADNAME://127.0.0.1:$badname_port"
    sed -i -e "s#^\(advertised\.\)\{0,1\}listeners=PLAINTEXT://127.0.0.1:$port,#&$extra,#" \
        -e "s#^listener\.security\.protocol\.map=.*#&,SASL_SSL:SASL_SSL,MTLS:SSL,BADNAME:SSL#" "$props"
    cat >>"$props" <<EOF
ssl.keystore.type=PEM
ssl.keystore.location=$dir/pki/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/pki/ca.pem
listener.name.mtls.ssl.client.auth=required
listener.name.badname.ssl.keystore.location=$dir/pki/badname.pem
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_user="$sasl_password";
EOF
}

do_start() {
    local pid
    if pid="$(broker_pid)"; then
        say "already running (pid $pid)"
        bootstrap
        return 0
    fi
    local libs
    libs="$("$here/kafka-jars.sh" | tail -1)"

    if [[ ! -f "$dir/data/meta.properties" ]]; then
        [[ -n "$port" ]] || port="$(free_port)"
        [[ -n "$cport" ]] || { cport="$(free_port)"; while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done; }
        local scram=()
        if ((security)); then
            # Three more distinct free ports, and the certificates.
            local taken=" $port $cport " q v
            for v in sasl_port mtls_port badname_port; do
                q="$(free_port)"
                while [[ "$taken" == *" $q "* ]]; do q="$(free_port)"; done
                taken+="$q "
                printf -v "$v" '%s' "$q"
            done
            "$here/kafka-pki.sh" "$dir/pki"
            scram=(--add-scram "SCRAM-SHA-512=[name=$sasl_user,password=$sasl_password]")
        fi
        rm -rf "$dir/data"
        write_props
        local id
        id="$(cluster_id)"
        say "formatting $dir/data (cluster id $id)"
        if ! java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dbrw.kafka.loglevel=WARN \
            "-Dlog4j2.configurationFile=$log4j_config" -cp "$libs/*" \
            kafka.tools.StorageTool format --standalone -t "$id" -c "$props" "${scram[@]}" \
            >"$dir/format.log" 2>&1; then
            cat "$dir/format.log" >&2
            say "format failed"
            return 1
        fi
    else
        # Already formatted: the ports are those of the stored config.
        local want_port want_cport
        want_port="$(bootstrap | cut -d: -f2)"
        want_cport="$(prop controller.quorum.bootstrap.servers | cut -d: -f2)"
        if [[ -n "$port" && "$port" != "$want_port" ]] || [[ -n "$cport" && "$cport" != "$want_cport" ]]; then
            say "$dir was formatted for ports $want_port/$want_cport; use 'reset' to change them"
            return 2
        fi
    fi

    local offset
    offset=$(stat -c %s "$logfile" 2>/dev/null || echo 0)
    echo "==== kafka-broker.sh: starting at $(date '+%F %T') ====" >>"$logfile"
    (cd "$dir" && exec nohup java "${jvm_opts[@]}" "-Dlog4j2.configurationFile=$log4j_config" \
        -cp "$libs/*" kafka.Kafka "$props" </dev/null >>"$logfile" 2>&1) &
    pid=$!
    echo "$pid" >"$pidfile"

    local timeout="${BRW_KAFKA_READY_TIMEOUT:-90}" start=$SECONDS bs
    bs="$(bootstrap)"
    while :; do
        if tail -c "+$((offset + 1))" "$logfile" | grep -q 'Kafka Server started' &&
            (exec 3<>"/dev/tcp/127.0.0.1/${bs#*:}") 2>/dev/null; then
            say "ready in $((SECONDS - start)) s (pid $pid, log $logfile)"
            print_security
            echo "$bs"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$logfile" >&2
            say "broker exited while starting"
            rm -f "$pidfile"
            return 1
        fi
        if ((SECONDS - start >= timeout)); then
            tail -n 40 "$logfile" >&2
            say "not ready within $timeout s; stopping it"
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$pidfile"
            return 1
        fi
        sleep 0.1
    done
}

do_stop() {
    local pid
    if ! pid="$(broker_pid)"; then
        say "not running"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid"
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "no exit 30 s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    say "stopped (pid $pid)"
}

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
restart) do_stop && do_start ;;
status)
    if pid="$(broker_pid)"; then
        say "running (pid $pid, dir $dir)"
        print_security
        bootstrap
    else
        say "not running (dir $dir)"
        exit 1
    fi
    ;;
reset)
    do_stop
    rm -rf "$dir/data" "$props" "$logfile" "$dir/format.log" "$dir/pki"
    say "reset $dir"
    ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
