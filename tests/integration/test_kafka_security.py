"""End to end on a real Kafka broker over the production transports (issue 11
item 5): SASL_SSL with SCRAM-SHA-512, TLS with a client certificate (mTLS),
and SASL_SSL with PLAIN each carry the whole pipeline; a wrong password, an
unknown CA, a hostname mismatch and a missing client certificate each make
the worker say so in one ERROR line and answer /readyz 503 with the reason
kafka_auth naming what failed, while it keeps running; once the broker
accepts the password, the worker becomes ready by itself. No password
appears in any output.

One broker for every scenario (harness.BrokerSecurity: listeners SASL_SSL,
MTLS and BADNAME besides PLAINTEXT, certificates made by
scripts/kafka-pki.sh, SCRAM users created at format time); all the workers
run at once. The test's own clients use the PLAINTEXT listener.

Scenarios:
  scram      SASL_SSL, SCRAM-SHA-512; the password from the environment
  mtls       SSL, client certificate with an encrypted key (ssl.key.password)
  plain      SASL_SSL, PLAIN (Confluent Cloud's way)
  nohostchk  the BADNAME listener with ssl.endpoint.identification.algorithm
             = none: ready (the control of `badname`: the chain is good, only
             the name is wrong)
  badpw      SCRAM with a password the broker does not have for that user;
             then the user's password is changed on the broker to this one
             (kafka-configs --alter): ready again, the reason cleared
  unknownca  SASL_SSL with ssl.ca.location of a CA that signed nothing here
  badname    the BADNAME listener: its certificate names kafka.wrong.example
  nocert     the MTLS listener without a client certificate
  badkeypw   a wrong ssl.key.password: refused at start (exit 1), quoted
             nowhere

SCRAM against Kafka 4.x needs librdkafka >= 2.6.1: with an older worker
(the 2.0.2 floor) the SCRAM scenarios are skipped, and the test says so.

Run: /usr/bin/python3 tests/integration/test_kafka_security.py --bin-dir BUILD
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (BrokerSecurity, Checks, KafkaBroker, binary, log,  # noqa: E402
                     parse_args, produce, run_main)
from pipeline import (API_KEY, Sim, Worker, committed_at_end, compare_with_truth,  # noqa: E402
                      event, http_get, parse_metrics, scratch_dir, wait_reports,
                      wait_until, worker_config)

SCRAM_USER, SCRAM_PW = "brw-scram", "scram-Pa55-ee01"
PLAIN_USER, PLAIN_PW = "brw-plain", "plain-Pa55-ee02"
KEY_PW = "client-key-Pa55-ee03"
ROTATED_USER = "brw-rotated"
ROTATED_OLD_PW = "rotated-old-Pa55-ee04"  # what the broker has at first
ROTATED_NEW_PW = "rotated-new-Pa55-ee05"  # what the worker sends
WRONG_KEY_PW = "wrong-key-Pa55-ee06"
SECRETS = [SCRAM_PW, PLAIN_PW, KEY_PW, ROTATED_OLD_PW, ROTATED_NEW_PW, WRONG_KEY_PW, API_KEY]

CAMPAIGNS = 25  # per pipeline scenario
# Bounds, generous for a loaded 2-core machine: they are about the state
# being reached at all, not speed.
REPORTS_S = 120
BLOCKED_S = 45
QUIET_S = 10  # the failing workers keep retrying this long after the check
RECOVER_S = 60
# The clear phrase each failure's /readyz detail and ERROR line must carry.
FAILURES = {
    "badpw": "SASL authentication failed",
    "unknownca": "unknown CA",
    "badname": "hostname mismatch",
    "nocert": "refused the client certificate",
}


def version_tuple(text: str) -> tuple:
    m = re.search(r"librdkafka/(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def readyz(base: str):
    status, body = http_get(base + "/readyz")
    try:
        return status, json.loads(body), body.decode(errors="replace")
    except ValueError:
        return status, {}, body.decode(errors="replace")


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("kafka-security")
    worker_bin = binary(args.bin_dir, "bsg-report-worker")
    version = subprocess.run([str(worker_bin), "--version"], stdout=subprocess.PIPE,
                             text=True, check=True).stdout
    scram_ok = version_tuple(version) >= (2, 6, 1)
    log(f"worker: {version.strip()}; SCRAM scenarios {'on' if scram_ok else 'SKIPPED'}")
    if not scram_ok:
        print("SKIP: scram, badpw (SCRAM against Kafka 4.x needs librdkafka >= 2.6.1)", flush=True)

    security = BrokerSecurity(
        scram_users={SCRAM_USER: SCRAM_PW, ROTATED_USER: ROTATED_OLD_PW},
        plain_users={PLAIN_USER: PLAIN_PW},
        client_key_password=KEY_PW)
    t_start = time.monotonic()
    with KafkaBroker(security=security) as kafka:
        bs = kafka.bootstrap
        pki = kafka.pki_dir
        ca = str(pki / "ca.pem")
        sasl_ssl = {"kafka.security.protocol": "SASL_SSL", "kafka.ssl.ca.location": ca}
        scram = dict(sasl_ssl, **{"kafka.sasl.mechanisms": "SCRAM-SHA-512"})
        tls = {"kafka.security.protocol": "SSL", "kafka.ssl.ca.location": ca}
        # name -> (listener, worker config, environment)
        pipelines = {
            "mtls": ("MTLS", dict(tls, **{
                "kafka.ssl.certificate.location": str(pki / "client.crt"),
                "kafka.ssl.key.location": str(pki / "client.key"),
                "kafka.ssl.key.password": KEY_PW}), None),
            "plain": ("SASL_SSL", dict(sasl_ssl, **{
                "kafka.sasl.mechanisms": "PLAIN", "kafka.sasl.username": PLAIN_USER,
                "kafka.sasl.password": PLAIN_PW}), None),
        }
        if scram_ok:
            pipelines["scram"] = ("SASL_SSL", dict(scram, **{"kafka.sasl.username": SCRAM_USER}),
                                  {"BRW_KAFKA_SASL_PASSWORD": SCRAM_PW})
        failing = {
            # Good credentials: only the CA is wrong.
            "unknownca": ("SASL_SSL", dict(sasl_ssl, **{
                "kafka.sasl.mechanisms": "PLAIN", "kafka.sasl.username": PLAIN_USER,
                "kafka.sasl.password": PLAIN_PW, "kafka.ssl.ca.location": str(pki / "other-ca.pem")}),
                None),
            "badname": ("BADNAME", dict(tls), None),
            "nocert": ("MTLS", dict(tls), None),
        }
        if scram_ok:
            failing["badpw"] = ("SASL_SSL", dict(scram, **{
                "kafka.sasl.username": ROTATED_USER, "kafka.sasl.password": ROTATED_NEW_PW}), None)
        controls = {"nohostchk": ("BADNAME", dict(tls, **{
            "kafka.ssl.endpoint.identification.algorithm": "none"}), None)}

        def topics(name: str) -> dict:
            return {"input": f"sec.{name}.events", "output": f"sec.{name}.reports",
                    "dlq": f"sec.{name}.dlq"}

        want = {}
        for name in list(pipelines) + list(failing) + list(controls):
            t = topics(name)
            want.update({t["input"]: 2, t["output"]: 1, t["dlq"]: 1})
        kafka.create_topics(want)
        sim = Sim(args.bin_dir, work, "--seed", "11", "--time-scale", "600").start()
        workers: dict = {}
        try:
            def start(name: str, spec) -> None:
                listener, extra, env = spec
                cfg = worker_config(kafka.listener(listener), sim, f"brw-sec-{name}", topics(name),
                                    **{"metrics.listen": "127.0.0.1:0"})
                cfg.update(extra)
                workers[name] = Worker(args.bin_dir, work, cfg, name=name, env=env).start()

            # The failing ones first: they have the longest way to go.
            for name, spec in list(failing.items()) + list(controls.items()) + list(pipelines.items()):
                start(name, spec)
            bases = {name: w.metrics_url() for name, w in workers.items()}

            # 1. The pipelines: events in, reports out, offsets committed.
            ids = {}
            for i, name in enumerate(pipelines):
                ids[name] = list(range(900001 + 1000 * i, 900001 + 1000 * i + CAMPAIGNS))
                produce(bs, topics(name)["input"], [(str(c), event(c)) for c in ids[name]])
            for name in pipelines:
                t0 = time.monotonic()
                finals = wait_reports(bs, topics(name)["output"], set(ids[name]), timeout=REPORTS_S)
                got = {r.json()["campaign_id"]: r.json() for r in finals}
                checks.eq(set(ids[name]) - set(got), set(),
                          f"{name}: every campaign reported over {pipelines[name][0]} "
                          f"({time.monotonic() - t0:.1f} s)")
                diffs = [f"{c}: {d}" for c in sorted(got) if c in ids[name]
                         for d in compare_with_truth(got[c], sim.truth(c))]
                checks.check(not diffs, f"{name}: reports equal the simulator's truth", "; ".join(diffs[:3]))
                at_end, ends = committed_at_end(bs, f"brw-sec-{name}", topics(name)["input"])
                checks.check(wait_until(at_end, timeout=30, interval=0.5),
                             f"{name}: committed offsets reach the end of the input {ends}")
                status, body, _ = readyz(bases[name])
                checks.check(status == 200 and body.get("kafka") is True and not body.get("blocked"),
                             f"{name}: /readyz 200, kafka true, nothing blocked", f"{status} {body}")
            ok = wait_until(lambda: readyz(bases["nohostchk"])[0] == 200, timeout=BLOCKED_S, interval=0.5)
            checks.check(ok, "nohostchk: the BADNAME listener without the hostname check is ready "
                         "(its chain is good: only the name fails badname)", str(readyz(bases["nohostchk"])[1]))

            # 2. The failures: one clear line, 503 naming the reason, alive.
            seen = {}
            for name, phrase in FAILURES.items():
                if name not in failing:
                    continue
                base = bases[name]

                def blocked(base=base, name=name) -> bool:
                    status, body, raw = readyz(base)
                    seen[name] = (status, body, raw)
                    return status == 503 and "kafka_auth" in body.get("blocked", {})

                ok = wait_until(blocked, timeout=BLOCKED_S, interval=0.5)
                status, body, raw = seen[name]
                detail = body.get("blocked", {}).get("kafka_auth", {}).get("detail", "")
                checks.check(ok, f"{name}: /readyz 503 with blocked.kafka_auth", f"{status} {raw[:300]}")
                checks.check(phrase in detail, f"{name}: the reason's detail says \"{phrase}\"", detail)
                checks.check("kafka_down" not in body.get("blocked", {}) and body.get("kafka") is False,
                             f"{name}: kafka false, and kafka_auth replaces kafka_down", raw[:300])
            time.sleep(QUIET_S)
            for name, phrase in FAILURES.items():
                if name not in failing:
                    continue
                w = workers[name]
                checks.check(w.proc.running(), f"{name}: the worker is still running "
                             f"{QUIET_S} s later (no crash, no exit)", f"exit {w.proc.returncode}")
                checks.eq(readyz(bases[name])[0], 503, f"{name}: still 503")
                lines = w.log_lines()
                errors = [ln for ln in lines if ln.get("level") == "error"]
                auth = [ln for ln in errors if "kafka_auth" in ln.get("msg", "")]
                checks.check(len(auth) == 1 and phrase in auth[0].get("msg", ""),
                             f"{name}: exactly one ERROR line says kafka_auth: \"{phrase}\"",
                             f"{len(auth)}: {[ln.get('msg', '')[:200] for ln in auth[:3]]}")
                noisy = [ln.get("msg", "")[:160] for ln in lines if ln.get("level") in ("warn", "error")
                         and ln not in auth]
                checks.check(len(noisy) <= 2, f"{name}: at most 2 other WARN/ERROR lines "
                             f"while librdkafka retries", f"{len(noisy)}: {noisy[:4]}")
                m = parse_metrics(http_get(bases[name] + "/metrics")[1].decode())
                checks.eq(m.get(("bsg_report_worker_blocked", "kafka_auth")), 1.0,
                          f"{name}: blocked{{reason=\"kafka_auth\"}} is 1")
            if "badpw" in failing:
                # The broker saw several attempts: the one line is not one
                # attempt, it is the rate limit.
                attempts = kafka.log_path.read_text(errors="replace").count(
                    "invalid credentials with SASL mechanism SCRAM-SHA-512")
                checks.check(attempts >= 3, f"badpw: the broker refused {attempts} authentications "
                             "(librdkafka retried; the worker said it once)")

            # 3. The password is changed on the broker to the one the worker
            # sends: it becomes ready by itself, and says the reason cleared.
            if "badpw" in failing:
                t0 = time.monotonic()
                kafka.set_scram_password(ROTATED_USER, ROTATED_NEW_PW)
                ok = wait_until(lambda: readyz(bases["badpw"])[0] == 200, timeout=RECOVER_S, interval=0.5)
                checks.check(ok, f"badpw: ready {time.monotonic() - t0:.1f} s after the broker "
                             "accepted the password", str(readyz(bases["badpw"])[1]))
                checks.check(any("kafka_auth cleared" in ln.get("msg", "")
                                 for ln in workers["badpw"].log_lines()),
                             "badpw: the worker logs that kafka_auth cleared")

            # 4. A wrong ssl.key.password: refused at start, without a crash
            # and without quoting it.
            cfg = worker_config(kafka.listener("MTLS"), sim, "brw-sec-badkeypw", topics("mtls"))
            cfg.update(pipelines["mtls"][1])
            cfg["kafka.ssl.key.password"] = WRONG_KEY_PW
            bad = Worker(args.bin_dir, work, cfg, name="badkeypw").start()
            rc = bad.proc.wait(timeout=30)
            text = bad.proc.stderr_text()
            checks.eq(rc, 1, "badkeypw: a wrong ssl.key.password exits 1 at start")
            checks.check("ssl.key" in text, "badkeypw: the error names the key setting",
                         text[-300:])
            workers["badkeypw"] = bad

            # 5. Secrets: nowhere in any output, nor in the environment of
            # the worker that read one from there.
            if "scram" in workers:
                environ = Path(f"/proc/{workers['scram'].proc.pid}/environ").read_bytes()
                checks.check(SCRAM_PW.encode() not in environ,
                             "scram: the password read from BRW_KAFKA_SASL_PASSWORD is wiped from "
                             "/proc/PID/environ")
            for name, base in bases.items():
                raw = readyz(base)[2]
                checks.check(all(s not in raw for s in SECRETS), f"{name}: no password in /readyz")

            # 6. SIGTERM: every running worker exits 0.
            for name, w in workers.items():
                if w.proc.running():
                    w.proc.signal(signal.SIGTERM)
            for name, w in workers.items():
                if name != "badkeypw":
                    checks.eq(w.proc.wait(timeout=60), 0, f"{name}: SIGTERM, exit 0")
            for name, w in workers.items():
                out = w.proc.stderr_text() + w.proc.stdout_text()
                leaked = [s for s in SECRETS if s in out]
                checks.check(not leaked, f"{name}: no password in the worker's output",
                             f"{len(leaked)} found")
        finally:
            for w in workers.values():
                if w.proc.running():
                    w.proc.print_tail()
                    w.proc.kill()
            sim.stop()
    log(f"whole test: {time.monotonic() - t_start:.1f} s")
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
