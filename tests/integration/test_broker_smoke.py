#!/usr/bin/python3
"""Smoke test of the test broker itself and of the librdkafka features the
worker relies on, against a real Kafka broker (tests/integration/harness.py).

Checks: start to ready; topic creation; idempotent produce of 100 records
with headers; consume them back; group offset commits (plain through
python-confluent-kafka, with metadata through librdkafka's rd_kafka_commit);
the 4096-byte metadata limit; consumer groups with the cooperative-sticky,
range and roundrobin assignors; data and commits surviving a clean restart
and a SIGKILL of the broker on the same data dir.

Run: /usr/bin/python3 tests/integration/test_broker_smoke.py [--bin-dir BUILD]
(--bin-dir is accepted for uniformity; this test needs no built binary).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    Checks,
    KafkaBroker,
    commit_offsets,
    committed_offsets,
    consume_all,
    end_offsets,
    librdkafka_version,
    log,
    parse_args,
    produce,
    run_main,
)

TOPIC = "smoke"
PARTITIONS = 4
N = 100


def expected_records():
    return [
        (f"key-{i}", f'{{"n":{i}}}', [("content-type", "application/json"), ("seq", str(i))])
        for i in range(N)
    ]


def check_records(checks: Checks, records, what: str) -> None:
    checks.eq(len(records), N, f"{what}: {N} records read back")
    by_key = {r.key: r for r in records}
    ok = all(
        by_key.get(f"key-{i}".encode()) is not None
        and by_key[f"key-{i}".encode()].value == f'{{"n":{i}}}'.encode()
        and by_key[f"key-{i}".encode()].header("seq") == str(i).encode()
        and by_key[f"key-{i}".encode()].header("content-type") == b"application/json"
        for i in range(N)
    )
    checks.check(ok, f"{what}: keys, values and headers intact")
    per_part = {}
    for r in records:
        per_part.setdefault(r.partition, []).append(r.offset)
    contiguous = all(sorted(offs) == list(range(len(offs))) for offs in per_part.values())
    checks.check(contiguous, f"{what}: offsets contiguous from 0 in each partition", str(
        {p: len(o) for p, o in per_part.items()}))


def group_assignment(bootstrap: str, strategy: str, timeout: float = 30.0):
    """Two consumers in one group with the given assignor; returns
    (assignments of both once stable, assignment of the survivor after the
    other leaves, seconds taken)."""
    import confluent_kafka as ck

    group = f"smoke-{strategy}-{int(time.time() * 1000)}"
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "partition.assignment.strategy": strategy,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    t0 = time.monotonic()
    a, b = ck.Consumer(conf), ck.Consumer(conf)
    try:
        a.subscribe([TOPIC])
        b.subscribe([TOPIC])
        deadline = time.monotonic() + timeout
        both = None
        while time.monotonic() < deadline:
            a.poll(0.1)
            b.poll(0.1)
            pa = {tp.partition for tp in a.assignment()}
            pb = {tp.partition for tp in b.assignment()}
            if pa and pb and not (pa & pb) and len(pa | pb) == PARTITIONS:
                both = (pa, pb)
                break
        b.close()
        survivor = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            a.poll(0.1)
            survivor = {tp.partition for tp in a.assignment()}
            if len(survivor) == PARTITIONS:
                break
        return both, survivor, time.monotonic() - t0
    finally:
        a.close()


def main() -> int:
    parse_args(__doc__.splitlines()[0])
    import confluent_kafka as ck

    checks = Checks()
    log(f"confluent_kafka {ck.version()[0]}, librdkafka {librdkafka_version()}")
    t_start = time.monotonic()

    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        checks.check(kafka.ready_seconds is not None, f"broker ready in {kafka.ready_seconds:.2f} s on {bs}")

        kafka.create_topics({TOPIC: PARTITIONS})
        checks.eq(len(end_offsets(bs, TOPIC)), PARTITIONS, f"topic {TOPIC} created with {PARTITIONS} partitions")

        # Idempotent producer (enable.idempotence=true is produce()'s default).
        t0 = time.monotonic()
        delivered = produce(bs, TOPIC, expected_records())
        checks.check(len(delivered) == N and all(d is not None for d in delivered),
                     f"{N} records delivered by an idempotent producer in {time.monotonic() - t0:.2f} s")
        checks.check(len({p for p, _ in delivered}) > 1, "records spread over several partitions")
        checks.eq(sum(end_offsets(bs, TOPIC).values()), N, "high watermarks add up to the record count")

        records = consume_all(bs, TOPIC, count=N, timeout=30)
        check_records(checks, records, "first read")

        # Offset commits in a consumer group.
        group = "smoke-group"
        hw = end_offsets(bs, TOPIC)
        c = ck.Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
        try:
            res = c.commit(offsets=[ck.TopicPartition(TOPIC, p, off) for p, off in hw.items()],
                           asynchronous=False)
            checks.check(all(tp.error is None for tp in res), "python Consumer.commit(offsets=...) succeeded")
            got = {tp.partition: tp.offset for tp in
                   c.committed([ck.TopicPartition(TOPIC, p) for p in hw], timeout=10)}
            checks.eq(got, hw, "python Consumer.committed() returns the committed offsets")
        finally:
            c.close()
        checks.check(not hasattr(ck.TopicPartition(TOPIC, 0, 0), "metadata"),
                     "python-confluent-kafka 1.7.0 has no TopicPartition.metadata (commit metadata via librdkafka)")

        # Metadata with the commit, as the worker does it (rd_kafka_commit
        # with rktpar->metadata set).
        meta_group = "smoke-meta"
        metas = {p: f"v1;p={p};done=3,5,7-9" for p in range(PARTITIONS)}
        commit_offsets(bs, meta_group, TOPIC, {p: (p + 1, m) for p, m in metas.items()})
        got = committed_offsets(bs, meta_group, TOPIC, range(PARTITIONS))
        checks.eq(got, {p: (p + 1, metas[p]) for p in range(PARTITIONS)},
                  "rd_kafka_commit with metadata; rd_kafka_committed reads offsets and metadata back")
        big = "x" * 4096
        commit_offsets(bs, meta_group, TOPIC, {0: (10, big)})
        checks.eq(committed_offsets(bs, meta_group, TOPIC, [0])[0], (10, big), "4096-byte metadata accepted")
        try:
            commit_offsets(bs, meta_group, TOPIC, {0: (11, big + "y")})
            checks.fail("4097-byte metadata rejected", "the commit succeeded")
        except RuntimeError as e:
            checks.check("metadata" in str(e).lower() or "large" in str(e).lower(),
                         f"4097-byte metadata rejected by the broker: {e}")
        checks.eq(committed_offsets(bs, meta_group, TOPIC, [0])[0], (10, big),
                  "a rejected commit leaves the previous one in place")

        # Consumer groups with each assignor librdkafka 2.0.2 offers.
        for strategy in ("cooperative-sticky", "range", "roundrobin"):
            both, survivor, secs = group_assignment(bs, strategy)
            checks.check(both is not None,
                         f"{strategy}: two members share the {PARTITIONS} partitions ({both}) in {secs:.2f} s")
            checks.eq(survivor, set(range(PARTITIONS)), f"{strategy}: the remaining member takes all partitions")

        # Clean restart on the same data dir and ports.
        t0 = time.monotonic()
        kafka.stop_broker_process()
        checks.check(not kafka.running(), f"broker stopped by SIGTERM in {time.monotonic() - t0:.2f} s")
        kafka.start_again()
        checks.check(kafka.running(), f"broker restarted on the same data dir in {kafka.ready_seconds:.2f} s")
        check_records(checks, consume_all(bs, TOPIC, count=N, timeout=30), "after a clean restart")
        checks.eq(committed_offsets(bs, meta_group, TOPIC, [1])[1], (2, metas[1]),
                  "committed offsets and metadata survive a restart")

        # A crash (SIGKILL) of the broker: the OS page cache keeps the data.
        kafka.stop_broker_process(kill=True)
        kafka.start_again()
        checks.check(kafka.running(), f"broker restarted after SIGKILL in {kafka.ready_seconds:.2f} s")
        produce(bs, TOPIC, [("after-crash", "1")])
        records = consume_all(bs, TOPIC, count=N + 1, timeout=30)
        checks.eq(len(records), N + 1, "after a SIGKILL: old records kept, new ones accepted")

    checks.check(True, f"whole smoke test in {time.monotonic() - t_start:.1f} s")
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
