"""The image, built and run for real: the Dockerfile built with podman
(`scripts/image-build.sh`: a debootstrapped Debian 12 base, cached, and
`podman build --isolation=chroot`), its configuration (runtime user, entry
point, environment, HEALTHCHECK, labels), its filesystem (the user in
/etc/passwd, the CA bundle, the pinned librdkafka and no Debian librdkafka1,
every library of both binaries resolved by `ldd` inside the image,
`--version` naming librdkafka 2.14.2), then the pipeline e2e
(test_pipeline.py's run, every check of it) with the image's worker and
simulator run from the image's mounted, read-only filesystem by chroot as
the image's user with the image's environment (chroot_exec.py), against the
test broker on 127.0.0.1; the image's HEALTHCHECK command is run against
that worker.

OCI containers cannot start in this sandbox (crun cannot set rlimits), so no
container is run: the image is mounted (`podman image mount`) and its
programs run as a runtime would run them. Podman's storage for this test is
its own, under $BRW_CACHE_DIR/podman (the base, the build stage's layers and
the image: ~550 MB; earlier builds are pruned), so a second run takes
seconds to build.

Exit 77 (ctest: skipped) with a SKIP line only where podman cannot build:
not root, podman or debootstrap missing, or a one-line build on the base
fails. BRW_REQUIRE_IMAGE_TEST=1 (.ci/run) makes that a failure instead.

Run: /usr/bin/python3 tests/integration/test_image.py --bin-dir build"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO_ROOT, Checks, free_port, log, parse_args, run_main  # noqa: E402
from test_pipeline import run_pipeline  # noqa: E402

SKIP_CODE = 77  # tests/CMakeLists.txt: SKIP_RETURN_CODE
TAG = "localhost/bsg-report-worker:e2e"
CACHE = Path(os.environ.get("BRW_CACHE_DIR", Path.home() / ".cache" / "bsg-report-worker"))
# A storage of the test's own: its prune touches nothing else, and a second
# run finds every layer cached.
PODMAN = ["podman", "--root", str(CACHE / "podman" / "root"),
          "--runroot", "/run/bsg-report-worker-e2e-podman"]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "image-build.sh"
CHROOT_EXEC = Path(__file__).resolve().parent / "chroot_exec.py"


def run(argv, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, **kw)


def skip(reason: str) -> int:
    """The exit code of a skip (77, after a SKIP line), or of a failure
    where the image test is required (BRW_REQUIRE_IMAGE_TEST=1)."""
    if os.environ.get("BRW_REQUIRE_IMAGE_TEST") == "1":
        checks = Checks()
        checks.fail("the image test is required here (BRW_REQUIRE_IMAGE_TEST=1)", reason)
        return checks.summary()
    print(f"SKIP: {reason}", flush=True)
    return SKIP_CODE


def cmake_value(pattern: str) -> str:
    m = re.search(pattern, (REPO_ROOT / "CMakeLists.txt").read_text())
    return m.group(1) if m else "?"


def podman_can_build(base: str) -> str:
    """'' if `podman build --isolation=chroot` builds a one-line Dockerfile
    on base here, else why not."""
    with tempfile.TemporaryDirectory() as ctx:
        (Path(ctx) / "Dockerfile").write_text(f"FROM {base}\nRUN true\n")
        iid = Path(ctx) / "iid"
        res = run(PODMAN + ["build", "--isolation=chroot", "--network=host", "--layers=false",
                            "--iidfile", iid, ctx], timeout=120)
        if iid.exists():
            run(PODMAN + ["rmi", "-f", iid.read_text().strip()])
        if res.returncode != 0:
            return "podman cannot build here: " + (res.stderr.strip().splitlines() or ["?"])[-1]
    return ""


def main() -> int:
    args = parse_args(__doc__)
    if os.geteuid() != 0:
        return skip("needs root (podman build --isolation=chroot, chroot)")
    for tool in ("podman", "debootstrap"):
        if not shutil.which(tool):
            return skip(f"{tool} not installed (scripts/install-deps.sh installs it)")
    checks = Checks()
    rdkafka = cmake_value(r'set\(BRW_RDKAFKA_CURRENT_VERSION "([0-9.]+)"\)')
    version = cmake_value(r"project\(\s*bsg-report-worker\s+VERSION\s+([0-9.]+)")

    # Mounts left by a run that was killed would keep images from the prune.
    run(PODMAN + ["image", "unmount", "--all", "--force"])

    t0 = time.monotonic()
    res = run([BUILD_SCRIPT, "--base-only", *PODMAN[1:]], timeout=600)
    if not checks.check(res.returncode == 0, "the base is made and imported (debootstrap, podman import)",
                        res.stderr[-2000:]):
        return checks.summary()
    base = res.stdout.split()[-1]
    t_base = time.monotonic() - t0
    for line in res.stderr.splitlines():
        if line.startswith("image-build.sh:"):
            log(line)
    why = podman_can_build(base)
    if why:
        return skip(why)

    t1 = time.monotonic()
    res = run([BUILD_SCRIPT, "--tag", TAG, "--prune", *PODMAN[1:]], timeout=900)
    t_build = time.monotonic() - t1
    log(f"base {t_base:.1f} s, image build {t_build:.1f} s "
        f"({res.stderr.count('Using cache')} steps from the cache)")
    if not checks.check(res.returncode == 0, "the Dockerfile builds (podman build --isolation=chroot)",
                        res.stderr[-3000:]):
        return checks.summary()
    for line in res.stderr.splitlines():
        if line.startswith("image-build.sh:"):
            log(line)

    info = json.loads(run(PODMAN + ["image", "inspect", TAG]).stdout)[0]
    cfg = info.get("Config") or {}
    user = cfg.get("User") or ""
    checks.check(user.split(":")[0] not in ("", "root", "0"), "the image's User is not root",
                 f"User {user!r}")
    entry = cfg.get("Entrypoint") or []
    checks.eq(entry, ["/usr/local/bin/bsg-report-worker"], "the image's entry point is the worker")
    entry = entry or ["/usr/local/bin/bsg-report-worker"]
    env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
    checks.eq(env.get("BRW_METRICS_LISTEN"), "0.0.0.0:9464", "the image sets BRW_METRICS_LISTEN")
    checks.eq(cfg.get("StopSignal"), "SIGTERM", "the image's stop signal is SIGTERM")
    labels = cfg.get("Labels") or {}
    checks.eq(labels.get("org.opencontainers.image.version"), version,
              "the image's version label is the project's version")
    checks.eq(labels.get("org.opencontainers.image.base.name"), base,
              "the image's base.name label names the base it was built on")
    hc = (info.get("Healthcheck") or {}).get("Test") or []
    checks.check(hc[:1] == ["CMD-SHELL"] and "/healthz" in " ".join(hc),
                 "the image keeps its HEALTHCHECK (docker format)", str(hc))

    # By id from here on: a build elsewhere may move the tag meanwhile.
    image_id = info["Id"]
    res = run(PODMAN + ["image", "mount", image_id])
    if not checks.check(res.returncode == 0 and res.stdout.strip(), "podman image mount", res.stderr):
        return checks.summary()
    root = Path(res.stdout.strip())
    log(f"image mounted at {root}")
    try:
        check_filesystem(checks, root, user, rdkafka)
        uid_gid = run_user(root, user)
        image_env = [f"{k}={v}" for k, v in env.items()]
        prefix = [sys.executable, CHROOT_EXEC, "--root", root, "--user", uid_gid,
                  "--workdir", cfg.get("WorkingDir") or "/"]
        for kv in image_env:
            prefix += ["--env", kv]
        prefix = [str(a) for a in prefix]

        for prog in (entry[0], "/usr/local/bin/bsg-api-sim"):
            res = run(prefix + ["--", "/usr/bin/ldd", prog])
            unresolved = [ln.strip() for ln in res.stdout.splitlines() if "not found" in ln]
            checks.check(res.returncode == 0 and not unresolved,
                         f"ldd {prog} in the image: every library resolved",
                         f"rc {res.returncode}; {unresolved or res.stderr.strip()}")
            if prog == entry[0]:
                so = re.search(r"librdkafka\.so\.1 => (\S+)", res.stdout)
                checks.eq(so.group(1) if so else None,
                          f"/opt/librdkafka-{rdkafka}/lib/librdkafka.so.1",
                          "the worker links the pinned librdkafka in the image")
        res = run(prefix + ["--", *entry, "--version"])
        log(f"the image's worker: {res.stdout.strip()}")
        checks.check(res.returncode == 0 and f"librdkafka/{rdkafka} " in res.stdout + " "
                     and res.stdout.startswith(f"bsg-report-worker {version} "),
                     f"the image's worker runs as {uid_gid} and says librdkafka {rdkafka}",
                     f"rc {res.returncode}: {res.stdout.strip()} {res.stderr.strip()}")

        def healthcheck(worker) -> None:
            """The image's HEALTHCHECK command, run in the image as the
            runtime would (/bin/sh -c), against the running worker, and
            against a port where nothing listens."""
            port = worker.metrics_url().rsplit(":", 1)[1]
            script = " ".join(hc[1:])
            for listen, want, what in ((f"127.0.0.1:{port}", 0, "the running worker"),
                                       (f"127.0.0.1:{free_port()}", 1, "a port with no worker")):
                hc_argv = [a for a in prefix] + ["--env", f"BRW_METRICS_LISTEN={listen}",
                                                  "--", "/bin/sh", "-c", script]
                r = run(hc_argv, timeout=10)
                checks.eq(r.returncode, want, f"the image's HEALTHCHECK exits {want} on {what}")

        t2 = time.monotonic()
        run_pipeline(args, checks, worker_command=prefix + ["--", *entry],
                     sim_command=prefix + ["--", "/usr/local/bin/bsg-api-sim"],
                     while_running=healthcheck if hc else None, name="image")
        log(f"pipeline with the image's worker: {time.monotonic() - t2:.1f} s")
    finally:
        res = run(PODMAN + ["image", "unmount", image_id])
        if res.returncode != 0:
            log(f"podman image unmount {image_id}: {res.stderr.strip()}")
    checks.check(run(PODMAN + ["image", "mount"]).stdout.strip() == "",
                 "the image is unmounted afterwards")
    log(f"test_image: {time.monotonic() - t0:.1f} s in all")
    return checks.summary()


def passwd(root: Path) -> dict:
    """{name: (uid, gid)} of the image's /etc/passwd."""
    out = {}
    for line in (root / "etc" / "passwd").read_text().splitlines():
        f = line.split(":")
        if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
            out[f[0]] = (int(f[2]), int(f[3]))
    return out


def run_user(root: Path, user: str) -> str:
    """The image's User as numeric UID:GID (a name, or a missing group,
    from the image's /etc/passwd)."""
    name, _, group = user.partition(":")
    users = passwd(root)
    uid = int(name) if name.isdigit() else users.get(name, (-1, -1))[0]
    if group.isdigit():
        gid = int(group)
    else:
        by_uid = {u: g for u, g in users.values()}
        gid = by_uid.get(uid, -1)
    return f"{uid}:{gid}"


def check_filesystem(checks: Checks, root: Path, user: str, rdkafka: str) -> None:
    """What the image's filesystem must hold, read from the mount."""
    users = passwd(root)
    uid = user.split(":")[0]
    uids = {str(u): n for n, (u, _) in users.items()}
    name = uid if not uid.isdigit() else uids.get(uid)
    checks.check(name in users and users[name][0] != 0,
                 f"the image's user ({user}) is in its /etc/passwd, not uid 0",
                 f"{name!r}; passwd has {sorted(users)}")
    groups = (root / "etc" / "group").read_text()
    gid = str(users.get(name, (0, -1))[1])
    checks.check(any(line.split(":")[2:3] == [gid] for line in groups.splitlines()),
                 f"the user's group {gid} is in the image's /etc/group")
    bundle = root / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    n = bundle.read_text(errors="replace").count("BEGIN CERTIFICATE") if bundle.is_file() else 0
    checks.check(n >= 100, "the image has the CA bundle /etc/ssl/certs/ca-certificates.crt",
                 f"{n} certificates")
    so = root / "opt" / f"librdkafka-{rdkafka}" / "lib" / "librdkafka.so.1"
    checks.check(so.is_file(), f"the image has /opt/librdkafka-{rdkafka}/lib/librdkafka.so.1")
    status = (root / "var" / "lib" / "dpkg" / "status").read_text()
    checks.check("\nPackage: librdkafka1\n" not in "\n" + status,
                 "the image has no Debian librdkafka1 (2.0.2) besides")
    checks.check(not (root / "var" / "lib" / "apt" / "lists").exists()
                 or not any(p.name.endswith(("_Packages", "_Packages.gz", ".lz4"))
                            for p in (root / "var" / "lib" / "apt" / "lists").iterdir()),
                 "the image keeps no apt lists")
    for prog in ("bsg-report-worker", "bsg-api-sim"):
        st = (root / "usr" / "local" / "bin" / prog).stat()
        checks.check(st.st_uid == 0 and not st.st_mode & 0o022,
                     f"/usr/local/bin/{prog} is root's and not writable by the user")


if __name__ == "__main__":
    run_main(main)
