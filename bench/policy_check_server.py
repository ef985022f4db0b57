"""Server CPU per TEEP request and SQL statements per policy check (issue 11's instrument).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tam_bench \
        .venv/bin/python bench/policy_check_server.py            # full run, ~8 min on 2 cores
    ... bench/policy_check_server.py --quick                     # smoke run, ~1 min

DATABASE_URL names the PostgreSQL server and credentials only: the database it names is not
touched; scratch databases <name>_srv_tpl and <name>_srv_<devices> are created and dropped here.

The server under test is gunicorn as README "Deployment" runs it (its command line is read
from the README; --workers, --worker-class, --gunicorn-args override it) with DEBUG off,
CONN_MAX_AGE as settings.py sets it, rate limits off, keys and secrets generated into a
temporary folder. It is pinned to --server-cpus, and so are the PostgreSQL backends serving
the scratch database (sched_setaffinity on their pids, as `taskset -p` does); the load comes
from --concurrency lean client processes in their own session, pinned to --load-cpus.

Scenarios, each measured for --seconds after --warmup:
  connect      empty POST -> signed QueryRequest (COSE_Sign, ESP256 + Ed25519)
  nothing-due  empty POST -> QueryRequest -> QueryResponse (tc-list + SUIT report, as the
               product agent sends) -> 204: the steady state of a fleet
  update       the same, but the device lacks a component its group requires: -> Update ->
               Success -> 204; the device never reports the component, so every check repeats
The nothing-due check runs again on the larger fleet (--fleet, default 1,000 and 100,000
devices, each with a key, an installed component and a policy in force): fleet flatness.

Figures: server CPU (gunicorn master+workers, PostgreSQL backends of the scratch database)
per request and per check from /proc/<pid>/stat before and after the window; SQL statements
and writes per request, counted exactly by running the same messages once more through the
real view in-process (Django test client, execute_wrapper), and from pg_stat_statements when
the server preloads it; pg_stat_database deltas of the window; throughput and latency; the
TAM-side wire work of one check against raw `cryptography` (bench/wire_cost.py). Every figure
with a target in issue 11 is printed with its distance from the target.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# Issue 11's targets (printed, never asserted).
TARGETS = {
    "nothing_due_statements": 6,
    "nothing_due_cpu_us": 4000,
    "update_statements": 12,
    "connect_writes": 1,
    "connect_cpu_us": 900,
    "wire_ratio": 1.5,
    "fleet_ratio": 1.2,
}
GO_TAM_CONNECT_CPU_US = 369  # AttesTAM, issue 11 (the goal beyond the issue)

SCENARIOS = ("connect", "nothing-due", "update")
# Caller's variables the server sees (DATABASE_CONN_MAX_AGE: to compare with settings' default).
PASSED_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "CELERY_BROKER_URL",
    "DATABASE_CONN_MAX_AGE",
    "DATABASE_CONN_HEALTH_CHECKS",
    "DATABASE_SERVER_SIDE_BINDING",
    "DATABASE_PREPARE_THRESHOLD",
)
PHASES = ("connect", "query-response", "success")  # request kinds, by position in a check

# --- /proc ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat this benchmark reads (proc(5)); times in clock ticks."""

    pid: int
    comm: str
    state: str
    ppid: int
    utime: int
    stime: int
    cutime: int  # of children waited for (gunicorn's master reaps recycled workers)
    cstime: int

    @property
    def own(self) -> int:
        return self.utime + self.stime

    @property
    def with_reaped_children(self) -> int:
        return self.utime + self.stime + self.cutime + self.cstime


def parse_proc_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line. The process name sits in parentheses and may itself hold
    spaces and parentheses ("(a (b) c)"), so the fields after it are found from the LAST ')'."""
    open_at = text.index("(")
    close_at = text.rindex(")")
    pid = int(text[:open_at].strip())
    comm = text[open_at + 1 : close_at]
    rest = text[close_at + 2 :].split()
    # rest[0] is field 3 (state); utime is field 14, so rest[11].
    return ProcStat(
        pid, comm, rest[0], int(rest[1]), int(rest[11]), int(rest[12]), int(rest[13]), int(rest[14])
    )


def read_stat(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return parse_proc_stat(handle.read())
    except (OSError, ValueError, IndexError):
        return None


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children_of(ppid: int) -> list[int]:
    found = []
    for pid in all_pids():
        stat = read_stat(pid)
        if stat is not None and stat.ppid == ppid:
            found.append(pid)
    return sorted(found)


def read_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def is_backend_of(cmdline: str, dbname: str) -> bool:
    """A PostgreSQL backend's process title:
    "postgres: [cluster: ]user database host(port) state"."""
    if not cmdline.startswith("postgres:"):
        return False
    words = cmdline.split()
    return dbname in words[1:] and "autovacuum" not in words


def pg_backend_pids(dbname: str, exclude=()) -> list[int]:
    return sorted(
        pid for pid in all_pids() if pid not in exclude and is_backend_of(read_cmdline(pid), dbname)
    )


def parse_cpu_list(text: str) -> set[int]:
    cpus = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-")
            cpus.update(range(int(low), int(high) + 1))
        else:
            cpus.add(int(part))
    return cpus


def cpu_list_text(cpus) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def cpus_busy_ticks(cpus) -> int:
    """Busy time of these CPUs from /proc/stat (every process and the kernel): a cross-check
    of the per-process figures when the server CPUs run nothing else."""
    busy = 0
    with open("/proc/stat") as handle:
        for line in handle:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                ticks = [int(v) for v in values]
                busy += sum(ticks[:8]) - ticks[3] - ticks[4]  # all but idle and iowait
    return busy


class GunicornMeter:
    """CPU of the gunicorn master and its workers. Workers recycled by --max-requests are
    counted through the master's cutime/cstime (their times once reaped), so the delta between
    two samples is exact whatever recycles in between."""

    def __init__(self, master_pid: int):
        self.master_pid = master_pid

    def sample(self) -> tuple[int, int]:
        """(master incl. reaped workers, live workers) in ticks; retried until the set of
        workers did not change while it was read (a worker reaped mid-read would be lost)."""
        for _ in range(20):
            before = children_of(self.master_pid)
            master = read_stat(self.master_pid)
            workers = [read_stat(pid) for pid in before]
            after = children_of(self.master_pid)
            if master is not None and before == after and all(w is not None for w in workers):
                return master.with_reaped_children, sum(w.with_reaped_children for w in workers)
        raise RuntimeError("gunicorn workers kept changing while their CPU was read")

    def workers(self) -> list[int]:
        return children_of(self.master_pid)


class PgMeter(threading.Thread):
    """CPU of the PostgreSQL backends serving one database, polled from /proc (20 Hz).

    A backend that exits between two polls (its gunicorn worker was recycled) is counted up to
    its last poll; `exited` says how many did, so the figure's completeness is visible. Each
    newly seen backend is pinned to `pin_cpus`."""

    def __init__(self, dbname: str, pin_cpus: set[int] | None, exclude=(), interval: float = 0.05):
        super().__init__(daemon=True)
        self.dbname = dbname
        self.pin_cpus = pin_cpus
        self.exclude = set(exclude)
        self.interval = interval
        self.last: dict[int, int] = {}
        self.alive: set[int] = set()
        self.pinned: set[int] = set()
        self.pin_failures: dict[int, str] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.window_start: dict[int, int] | None = None
        self.seen_in_window: set[int] = set()

    def poll(self) -> None:
        pids = pg_backend_pids(self.dbname, self.exclude)
        readings = {}
        for pid in pids:
            stat = read_stat(pid)
            if stat is not None:
                readings[pid] = stat.own
        with self.lock:
            self.last.update(readings)
            self.alive = set(readings)
            self.seen_in_window |= self.alive
        if self.pin_cpus:
            for pid in readings:
                if pid in self.pinned or pid in self.pin_failures:
                    continue
                try:
                    os.sched_setaffinity(pid, self.pin_cpus)
                    self.pinned.add(pid)
                except OSError as exc:
                    self.pin_failures[pid] = exc.strerror or str(exc)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.poll()

    def start_window(self) -> None:
        self.poll()
        with self.lock:
            self.window_start = {pid: self.last[pid] for pid in self.alive}
            self.seen_in_window = set(self.alive)

    def end_window(self) -> dict:
        self.poll()
        with self.lock:
            start = self.window_start or {}
            ticks = sum(self.last[pid] - start.get(pid, 0) for pid in self.seen_in_window)
            exited = len(self.seen_in_window - self.alive)
            return {"ticks": ticks, "backends": len(self.seen_in_window), "exited": exited}

    def stop(self) -> None:
        self.stopped.set()


# --- the lean client: raw cryptography COSE_Sign1, templates built once with the project's codec --


ESP256, ED25519 = -9, -19


class RawSigner:
    """COSE_Sign1 (RFC 9052 4.2) with `cryptography` directly: what an agent has to do, with no
    per-call key conversion, so the load generators leave the CPU to the server."""

    def __init__(self, private_key):
        import cbor2
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        from apps.teep.wire.keys import TeepKey

        self._dumps, self._tag = cbor2.dumps, cbor2.CBORTag
        self._ecdsa, self._decode_dss = ec.ECDSA(hashes.SHA256()), decode_dss_signature
        self.key = private_key
        self.is_p256 = isinstance(private_key, ec.EllipticCurvePrivateKey)
        self.alg = ESP256 if self.is_p256 else ED25519
        self.protected = cbor2.dumps({1: self.alg})
        self.kid = TeepKey(private_key).kid

    def signature(self, to_be_signed: bytes) -> bytes:
        if self.is_p256:
            r, s = self._decode_dss(self.key.sign(to_be_signed, self._ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.key.sign(to_be_signed)

    def sign1(self, payload: bytes) -> bytes:
        to_be_signed = self._dumps(["Signature1", self.protected, b"", payload])
        return self._dumps(
            self._tag(18, [self.protected, {4: self.kid}, payload, self.signature(to_be_signed)])
        )


@dataclasses.dataclass(frozen=True)
class HeldComponent:
    """What the product agent keeps of an installed component (apps.agent.state), as JSON."""

    component_id: tuple[bytes, ...]
    image_sha256: bytes
    image_size: int
    manifest_digest: tuple[int, bytes]
    reference_uri: str

    def to_json(self) -> dict:
        return {
            "component_id": [p.hex() for p in self.component_id],
            "image_sha256": self.image_sha256.hex(),
            "image_size": self.image_size,
            "manifest_digest": [self.manifest_digest[0], self.manifest_digest[1].hex()],
            "reference_uri": self.reference_uri,
        }

    @classmethod
    def from_json(cls, data: dict) -> HeldComponent:
        return cls(
            tuple(bytes.fromhex(p) for p in data["component_id"]),
            bytes.fromhex(data["image_sha256"]),
            data["image_size"],
            (data["manifest_digest"][0], bytes.fromhex(data["manifest_digest"][1])),
            data["reference_uri"],
        )

    @classmethod
    def from_agent(cls, installed) -> HeldComponent:
        return cls(
            tuple(installed.component_id),
            installed.image_sha256,
            installed.image_size,
            (installed.manifest_digest.algorithm, installed.manifest_digest.value),
            installed.reference_uri,
        )


class LeanAgent:
    """Answers like apps.agent.agent.TeepAgent for a device holding `held` (tc-list with the
    image digest, one signed SUIT report per component with the token as nonce), but builds
    each message from a template made once with the project's codec, and signs with RawSigner.
    `success_for`: the component whose install a Success reports (scenario "update")."""

    def __init__(
        self,
        teep_key,
        report_key,
        held: list[HeldComponent],
        success_for: HeldComponent | None,
        numbering_name: str,
    ):
        from apps.teep.wire import messages
        from apps.teep.wire.numbering import numbering_by_name

        self.numbering = numbering_by_name(numbering_name)
        self.signer = RawSigner(teep_key)
        self.report_signer = RawSigner(report_key)
        self.held = held
        self.placeholder = secrets.token_bytes(40)  # the TAM mints 40-byte tokens (apps/teep/tokens.py)
        self.report_templates = [self._report_payload(c, self.placeholder) for c in held]
        self.placeholder_reports = [self.report_signer.sign1(t) for t in self.report_templates]
        self.query_response_template = messages.encode(
            self._query_response(self.placeholder, self.placeholder_reports), self.numbering
        )
        count = self.query_response_template.count(self.placeholder)
        if count != 1 + len(held):
            raise RuntimeError(f"QueryResponse template holds the placeholder {count} times")
        self.success_report_template = (
            self._report_payload(success_for, self.placeholder) if success_for else None
        )
        placeholder_success_report = (
            (self.report_signer.sign1(self.success_report_template),) if success_for else None
        )
        self.placeholder_success_report = placeholder_success_report[0] if success_for else None
        self.success_template = messages.encode(
            messages.Success(token=self.placeholder, suit_reports=placeholder_success_report),
            self.numbering,
        )
        self.token_label = self.numbering.label("token")
        import cbor2

        self._loads, self._tag = cbor2.loads, cbor2.CBORTag

    def _report_payload(self, component: HeldComponent, nonce: bytes) -> bytes:
        from apps.teep.wire.suit import SuitDigest, SystemProperties, build_report

        digest = SuitDigest(component.manifest_digest[0], component.manifest_digest[1])
        properties = SystemProperties(
            component.component_id,
            {
                "image-digest": SuitDigest(-16, component.image_sha256),
                "image-size": component.image_size,
            },
        )
        return build_report(
            manifest_digest=digest,
            manifest_uri=component.reference_uri,
            nonce=nonce,
            records=[properties],
        )

    def _query_response(self, token: bytes, reports):
        from apps.teep.wire import messages
        from apps.teep.wire.suit import SuitDigest

        claims = tuple(
            {0: list(c.component_id), 3: SuitDigest(-16, c.image_sha256).to_cbor()}
            for c in self.held
        )
        return messages.QueryResponse(
            token=token, tc_list=claims or None, suit_reports=tuple(reports) or None
        )

    def query_response(self, token: bytes) -> bytes:
        if len(token) != len(self.placeholder):
            return self._slow_query_response(token)
        payload = self.query_response_template
        for placeholder_report, template in zip(
            self.placeholder_reports, self.report_templates, strict=True
        ):
            payload = payload.replace(
                placeholder_report,
                self.report_signer.sign1(template.replace(self.placeholder, token)),
            )
        return self.signer.sign1(payload.replace(self.placeholder, token))

    def _slow_query_response(self, token: bytes) -> bytes:
        from apps.teep.wire import messages

        reports = [self.report_signer.sign1(self._report_payload(c, token)) for c in self.held]
        return self.signer.sign1(
            messages.encode(self._query_response(token, reports), self.numbering)
        )

    def success(self, token: bytes) -> bytes:
        if len(token) != len(self.placeholder):
            from apps.teep.wire import messages

            return self.signer.sign1(messages.encode(messages.Success(token=token), self.numbering))
        payload = self.success_template
        if self.success_report_template is not None:
            report = self.report_signer.sign1(
                self.success_report_template.replace(self.placeholder, token)
            )
            payload = payload.replace(self.placeholder_success_report, report)
        return self.signer.sign1(payload.replace(self.placeholder, token))

    def read(self, body: bytes) -> tuple[int, bytes | None]:
        """(message type, token) of a TAM message, unverified: the load generator trusts its
        loopback server, and verifying would spend client CPU the figures do not need."""
        envelope = self._loads(body)
        structure = envelope.value if isinstance(envelope, self._tag) else envelope
        message = self._loads(structure[2])
        return message[0], message[1].get(self.token_label)


# --- HTTP ----------------------------------------------------------------------------------------


def request_head(host: str, port: int, path: str, length: int, source_ip: str) -> bytes:
    """What the reverse proxy README "Deployment" requires would forward: HTTPS scheme and the
    agent's address in X-Forwarded-For (BEHIND_TLS_PROXY=true)."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/teep+cbor\r\n"
        f"Content-Type: application/teep+cbor\r\nContent-Length: {length}\r\n"
        f"X-Forwarded-Proto: https\r\nX-Forwarded-For: {source_ip}\r\nConnection: close\r\n\r\n"
    ).encode()


def http_post(address, head: bytes, body: bytes, timeout: float = 60.0) -> tuple[int, bytes]:
    """One request on a fresh connection (gunicorn's sync workers close after each answer)."""
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.sendall(head + body)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    raw = b"".join(chunks)
    header, _, rest = raw.partition(b"\r\n\r\n")
    if not header.startswith(b"HTTP/1."):
        raise OSError("no HTTP answer")
    return int(header[9:12]), rest


# --- load worker (a separate process: --load-worker SPEC INDEX) ----------------------------------


def load_worker(spec_path: str, index: int) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    spec = json.loads(Path(spec_path).read_text())
    mine = spec["workers"][index]
    held = [HeldComponent.from_json(c) for c in spec["held"]]
    success_for = HeldComponent.from_json(spec["success_for"]) if spec.get("success_for") else None
    agents = [
        LeanAgent(
            load_pem_private_key(a["key"].encode(), None),
            load_pem_private_key(a["report_key"].encode(), None),
            held,
            success_for,
            spec["numbering"],
        )
        for a in mine["agents"]
    ]
    address = (spec["host"], spec["port"])
    source_ip = mine["source_ip"]
    empty_head = request_head(spec["host"], spec["port"], spec["path"], 0, source_ip)
    scenario = spec["scenario"]
    ends, latencies, phases, check_ends, check_latencies = [], [], [], [], []
    errors, error_count = [], 0
    stop_at = spec["stop_at"]
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    position = 0

    def post(body: bytes, phase: int, expect: int) -> bytes:
        head = (
            empty_head
            if not body
            else request_head(spec["host"], spec["port"], spec["path"], len(body), source_ip)
        )
        started = time.perf_counter()
        status, answer = http_post(address, head, body)
        elapsed = time.perf_counter() - started
        if status != expect:
            raise RuntimeError(
                f"{PHASES[phase]}: HTTP {status}, expected {expect} ({answer[:80]!r})"
            )
        ends.append(time.time())
        latencies.append(elapsed)
        phases.append(phase)
        return answer

    while time.time() < stop_at:
        agent = agents[position % len(agents)] if agents else None
        position += 1
        started = time.perf_counter()
        try:
            answer = post(b"", 0, 200)
            if scenario != "connect":
                _, token = agent.read(answer)
                answer = post(
                    agent.query_response(token), 1, 204 if scenario == "nothing-due" else 200
                )
                if scenario == "update":
                    _, token = agent.read(answer)
                    post(agent.success(token), 2, 204)
        except Exception as exc:  # counted and shown; the run goes on
            error_count += 1
            if len(errors) < 5:
                errors.append(f"{exc.__class__.__name__}: {exc}")
            time.sleep(0.01)
            continue
        check_ends.append(time.time())
        check_latencies.append(time.perf_counter() - started)
    Path(mine["out"]).write_text(
        json.dumps(
            {
                "ends": ends,
                "latencies": latencies,
                "phases": phases,
                "check_ends": check_ends,
                "check_latencies": check_latencies,
                "errors": errors,
                "error_count": error_count,
            }
        )
    )


# --- the server's configuration ------------------------------------------------------------------


def readme_gunicorn_args(readme: Path = ROOT / "README.md") -> list[str]:
    """The gunicorn command of README "Deployment", without the program and its bind address."""
    text = readme.read_text()
    section = text.split("\n## Deployment\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("gunicorn "):
            command = line
            while command.rstrip().endswith("\\"):
                number += 1
                command = command.rstrip()[:-1] + " " + lines[number].strip()
            words = shlex.split(command, comments=True)[1:]
            args, skip = [], False
            for word in words:
                if skip:
                    skip = False
                    continue
                if word in ("-b", "--bind"):
                    skip = True
                    continue
                if word.startswith("--bind="):
                    continue
                args.append(word)
            return args
    raise ValueError("no gunicorn command in README's Deployment section")


def gunicorn_option(args: list[str], *names: str, default=None):
    value = default
    for i, word in enumerate(args):
        for name in names:
            if word == name and i + 1 < len(args):
                value = args[i + 1]
            elif word.startswith(name + "=") and name.startswith("--"):
                value = word.split("=", 1)[1]
    return value


def scratch_url(database_url: str, name: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def database_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/") or "postgres"


def admin_connection(database_url: str, dbname: str = "postgres"):
    import psycopg

    parts = urlsplit(scratch_url(database_url, dbname))
    return psycopg.connect(
        urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, "")), autocommit=True
    )


def prepare_environment(workdir: Path, database_url: str, port: int) -> dict:
    """The server's environment: README "Deployment" where it applies on one machine."""
    from apps.teep.wire.keys import TeepKey

    keys = workdir / "keys"
    keys.mkdir(parents=True)
    files = {}
    for name, content in {
        "secret_key": secrets.token_urlsafe(64).encode(),
        "tam-esp256.pem": TeepKey.generate("p256").private_pem(),
        "tam-ed25519.pem": TeepKey.generate("ed25519").private_pem(),
        "data-encryption.key": secrets.token_bytes(32),
    }.items():
        path = keys / name
        path.write_bytes(content)
        path.chmod(0o600)
        files[name] = str(path)
    (workdir / "metrics").mkdir()
    (workdir / "static").mkdir()  # STATIC_ROOT: whitenoise warns when it is missing
    # Nothing else of the caller's environment reaches the server: only these pass through.
    env = {key: value for key, value in os.environ.items() if key in PASSED_THROUGH}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tam_portal.settings",
            "DEBUG": "false",
            "SECRET_KEY_FILE": files["secret_key"],
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "BEHIND_TLS_PROXY": "true",
            # The load sends X-Forwarded-Proto: https as the proxy would; the product agent used
            # once for reference (and its payload fetch) speaks plain HTTP: no redirect for it.
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": database_url,
            "DATA_DIR": str(workdir / "data"),
            "MEDIA_ROOT": str(workdir / "media"),
            "STATIC_ROOT": str(workdir / "static"),
            "TAM_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "TAM_SIGNING_KEY_FILES": f"{files['tam-esp256.pem']},{files['tam-ed25519.pem']}",
            "TAM_DATA_ENCRYPTION_KEY_FILE": files["data-encryption.key"],
            "TAM_GENERATE_DEVELOPMENT_KEYS": "false",
            "TEEP_RATE_LIMIT_PER_SOURCE": "0/60",
            "TEEP_RATE_LIMIT_PER_DEVICE": "0/60",
            "LOG_FORMAT": "json",
            "METRICS_ENABLED": "true",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        }
    )
    return env


# --- fleet ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Fleet:
    size: int
    driven: list  # (private key, report key) of the devices the nothing-due load drives
    updaters: list  # same, devices lacking the component their group requires
    steady_held: list[HeldComponent] = dataclasses.field(default_factory=list)
    update_component: HeldComponent | None = None
    build_seconds: float = 0.0


A_ID = [b"TEEP-Device", b"SecureFS", b"bench", b"steady-ta"]
B_ID = [b"TEEP-Device", b"SecureFS", b"bench", b"update-ta"]


def build_fleet(
    size: int, driven: int, updaters: int, reference_key_pem: bytes, batch: int = 5000
) -> Fleet:
    """`size` devices, each with its own P-256 or Ed25519 key (unique kid), component A
    installed and a policy requiring A in force; `updaters` of them also belong to a group
    requiring B, which they never hold. Plus one reference device (for the product agent)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from django.core.files.base import ContentFile
    from django.db import connection
    from django.utils import timezone

    from apps.components import services as catalogue
    from apps.devices.models import Device, InstalledComponent, Tag
    from apps.devices.services import _cose_key_bytes, register_agent
    from apps.policies.models import DeviceGroup, Policy
    from apps.teep.wire.keys import TeepKey

    started = time.monotonic()
    versions = {}
    for name, component_id in (("steady-ta", A_ID), ("update-ta", B_ID)):
        component = catalogue.create_component(
            name=f"bench-{name}", component_id=component_id, actor=None
        )
        versions[name] = catalogue.upload_binary(
            component=component,
            binary_file=ContentFile(os.urandom(4096), name=f"{name}.ta"),
            version_label="1.0",
            sequence_number=1,
            actor=None,
            release=True,
        )
    tags = {}
    for name, version in (
        ("fleet", versions["steady-ta"]),
        ("update-bench", versions["update-ta"]),
    ):
        tags[name] = Tag.objects.create(name=name)
        group = DeviceGroup.objects.create(name=name)
        group.tags.add(tags[name])
        Policy.objects.create(group=group, component=version.component, effect="required")
    register_agent(
        public_key_bytes=reference_key_pem, name="reference-agent", tags=["fleet", "update-bench"]
    )

    steady = versions["steady-ta"]
    chosen = driven + updaters
    stride = max(1, size // max(1, chosen))
    chosen_at = {i * stride: i for i in range(chosen)}  # spread over the id range
    kept = [None] * chosen
    through = Device.tags.through
    now = timezone.now()
    for start in range(0, size, batch):
        rows, keys_of = [], {}
        for n in range(start, min(size, start + batch)):
            kind = "ed25519" if n in chosen_at and chosen_at[n] % 2 else "p256"
            private = (
                ed25519.Ed25519PrivateKey.generate()
                if kind == "ed25519"
                else ec.generate_private_key(ec.SECP256R1())
            )
            key = TeepKey(private.public_key())
            rows.append(
                Device(
                    kid=key.kid.hex(),
                    public_key=_cose_key_bytes(key),
                    name=f"bench-{n}",
                    state=Device.State.ACTIVE,
                    first_contact_at=now,
                    last_contact_at=now,
                    attributes={"hwmodel": f"model-{n % 7}"},
                )
            )
            if n in chosen_at:
                report = (
                    ed25519.Ed25519PrivateKey.generate()
                    if kind == "ed25519"
                    else ec.generate_private_key(ec.SECP256R1())
                )
                keys_of[len(rows) - 1] = (chosen_at[n], private, report)
        devices = Device.objects.bulk_create(rows)
        links = [through(device_id=d.pk, tag_id=tags["fleet"].pk) for d in devices]
        for position, (slot, private, report) in keys_of.items():
            kept[slot] = (private, report)
            if slot >= driven:
                links.append(
                    through(device_id=devices[position].pk, tag_id=tags["update-bench"].pk)
                )
        through.objects.bulk_create(links)
        InstalledComponent.objects.bulk_create(
            InstalledComponent(
                device=d,
                component_key=steady.component.component_id,
                component=steady.component,
                version=steady,
                sequence_number=1,
                image_digest=steady.binary_sha256,
            )
            for d in devices
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    fleet = Fleet(size=size, driven=kept[:driven], updaters=kept[driven:])
    fleet.build_seconds = time.monotonic() - started
    return fleet


# --- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(
        self, args: list[str], env: dict, port: int, cpus: set[int] | None, log_path: Path
    ):
        command = [str(Path(sys.executable).parent / "gunicorn"), *args, "-b", f"127.0.0.1:{port}"]
        if cpus:
            command = ["taskset", "-c", cpu_list_text(cpus), *command]
        self.command = command
        self.port = port
        self.log = open(log_path, "wb")
        self.log_path = log_path
        # Its own session: the load's signals never reach it, and it is ended by its pid only.
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.meter = GunicornMeter(self.process.pid)

    def wait_ready(self, workers: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                status, _ = http_post(
                    ("127.0.0.1", self.port),
                    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    b"",
                    timeout=5,
                )
                if status == 200 and len(self.meter.workers()) >= workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not become ready:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


# --- measurements --------------------------------------------------------------------------------


def percentile(values, fraction):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


DB_COLUMNS = (
    "xact_commit",
    "xact_rollback",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "tup_fetched",
    "tup_returned",
    "blks_hit",
    "blks_read",
)


def db_stats(admin, dbname: str) -> dict:
    row = admin.execute(
        f"SELECT {', '.join(DB_COLUMNS)} FROM pg_stat_database WHERE datname = %s", [dbname]
    ).fetchone()
    return dict(zip(DB_COLUMNS, row, strict=True))


class StatementsView:
    """pg_stat_statements of the scratch database, when the server preloads it: statement calls
    and rows in the window, by kind. Read through a connection to the scratch database whose
    backend the CPU meter excludes; its own queries are filtered out."""

    QUERY = (
        "SELECT query, calls, rows FROM pg_stat_statements WHERE dbid = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE %s"
    )

    def __init__(self, connection):
        self.connection = connection

    def snapshot(self) -> dict:
        return {
            query: (calls, rows)
            for query, calls, rows in self.connection.execute(
                self.QUERY, ["%pg_stat_statements%"]
            ).fetchall()
        }

    FOREIGN_KEY_CHECK = re.compile(r"^SELECT \$?\d+ FROM ONLY .* FOR KEY SHARE OF", re.S)

    @classmethod
    def delta(cls, before: dict, after: dict) -> dict:
        """Calls in the window by kind: `statements` the application sent (savepoints
        included, as the in-process count has them), `health_checks` (CONN_HEALTH_CHECKS'
        `SELECT 1` per request), `transactions` (BEGIN/COMMIT), `foreign_key_checks` (run by
        PostgreSQL itself for INSERT/UPDATE of rows with foreign keys), and `top`."""
        kinds = {
            "statements": 0,
            "writes": 0,
            "rows_written": 0,
            "health_checks": 0,
            "transactions": 0,
            "foreign_key_checks": 0,
        }
        top = []
        for query, (calls, rows) in after.items():
            old_calls, old_rows = before.get(query, (0, 0))
            calls, rows = calls - old_calls, rows - old_rows
            if not calls:
                continue
            text = re.sub(r"\s+", " ", query).strip()
            verb = text.split(" ", 1)[0].upper() if text else ""
            top.append((calls, rows, text))
            if (
                verb in ("BEGIN", "COMMIT", "ROLLBACK", "START", "END")
                and "TO SAVEPOINT" not in text.upper()
            ):
                kinds["transactions"] += calls
            elif re.fullmatch(r"SELECT \$?\d+", text):
                kinds["health_checks"] += calls
            elif cls.FOREIGN_KEY_CHECK.match(text):
                kinds["foreign_key_checks"] += calls
            else:
                kinds["statements"] += calls
                if verb in ("INSERT", "UPDATE", "DELETE") or (
                    verb == "WITH" and re.search(r"\b(INSERT|UPDATE|DELETE)\b", text, re.I)
                ):
                    kinds["writes"] += calls
                    kinds["rows_written"] += rows
        kinds["top"] = sorted(top, reverse=True)[:60]
        return kinds


def run_scenario(
    scenario: str,
    *,
    fleet: Fleet,
    server: Server,
    pg: PgMeter,
    admin,
    statements_view,
    dbname: str,
    opts,
    workdir: Path,
    numbering_name: str,
) -> dict:
    """Drive `scenario` from --concurrency pinned processes; measure the window."""
    from cryptography.hazmat.primitives import serialization

    def pem(key) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    keys = fleet.updaters if scenario == "update" else fleet.driven
    procs = opts.concurrency
    speed_before = calibrate(opts.server_cpu_set, 3)  # the server is idle now
    start_at = time.time() + 1.5  # every process imports and builds its templates first
    window_start = start_at + opts.warmup
    window_end = window_start + opts.seconds
    stop_at = window_end + 0.5  # the server stays busy until the window is read
    spec = {
        "host": "127.0.0.1",
        "port": server.port,
        "path": "/tam",
        "scenario": scenario,
        "numbering": numbering_name,
        "start_at": start_at,
        "stop_at": stop_at,
        "held": [c.to_json() for c in fleet.steady_held],
        "success_for": fleet.update_component.to_json() if scenario == "update" else None,
        "workers": [
            {
                "agents": [{"key": pem(k), "report_key": pem(r)} for k, r in keys[i::procs]],
                "source_ip": f"192.0.2.{10 + i}",
                "out": str(workdir / f"load-{scenario}-{fleet.size}-{i}.json"),
            }
            for i in range(procs)
        ],
    }
    if scenario != "connect" and len(keys) < procs:
        raise SystemExit(f"--agents/--update-agents must be at least --concurrency ({procs})")
    spec_path = workdir / f"spec-{scenario}-{fleet.size}.json"
    spec_path.write_text(json.dumps(spec))
    loaders = []
    for i in range(procs):
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--load-worker",
            str(spec_path),
            str(i),
        ]
        if opts.load_cpu_set:
            command = ["taskset", "-c", cpu_list_text(opts.load_cpu_set), *command]
        loaders.append(subprocess.Popen(command, cwd=ROOT, start_new_session=True))
    try:
        time.sleep(max(0.0, window_start - time.time()))
        stats_before = db_stats(admin, dbname)
        pss_before = statements_view.snapshot() if statements_view else None
        pg.start_window()
        busy_before = cpus_busy_ticks(opts.server_cpu_set) if opts.server_cpu_set else None
        master_before, workers_before = server.meter.sample()
        workers_at_start = set(server.meter.workers())
        load_before = sum(stat.own for stat in (read_stat(p.pid) for p in loaders) if stat)
        time.sleep(max(0.0, window_end - time.time()))
        master_after, workers_after = server.meter.sample()
        busy_after = cpus_busy_ticks(opts.server_cpu_set) if opts.server_cpu_set else None
        load_after = sum(stat.own for stat in (read_stat(p.pid) for p in loaders) if stat)
        workers_recycled = len(workers_at_start - set(server.meter.workers()))
        pg_window = pg.end_window()
        pss_after = statements_view.snapshot() if statements_view else None
        stats_after = db_stats(admin, dbname)
        for process in loaders:
            process.wait(timeout=opts.seconds + opts.warmup + 120)
    finally:
        for process in loaders:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
    load_cpu = (load_after - load_before) / CLOCK_TICKS  # the clients' own CPU in the window
    speed_after = calibrate(opts.server_cpu_set, 3)  # the load has stopped

    requests = {phase: 0 for phase in PHASES}
    latencies, check_latencies, checks, errors, error_count = [], [], 0, [], 0
    for worker in spec["workers"]:
        out = Path(worker["out"])
        if not out.exists():
            errors.append(f"load process wrote no result ({out.name})")
            continue
        data = json.loads(out.read_text())
        for end, latency, phase in zip(
            data["ends"], data["latencies"], data["phases"], strict=True
        ):
            if window_start <= end < window_end:
                requests[PHASES[phase]] += 1
                latencies.append(latency)
        for end, latency in zip(data["check_ends"], data["check_latencies"], strict=True):
            if window_start <= end < window_end:
                checks += 1
                check_latencies.append(latency)
        errors += data["errors"]
        error_count += data["error_count"]
    total_requests = sum(requests.values())
    gunicorn_us = (
        ((master_after - master_before) + (workers_after - workers_before)) * 1e6 / CLOCK_TICKS
    )
    pg_us = pg_window["ticks"] * 1e6 / CLOCK_TICKS
    db_delta = {k: stats_after[k] - stats_before[k] for k in DB_COLUMNS}
    result = {
        "scenario": scenario,
        "fleet": fleet.size,
        "calibration_ms": (speed_before + speed_after) / 2,
        "window_s": opts.seconds,
        "requests": total_requests,
        "requests_by_kind": requests,
        "checks": checks,
        "errors": error_count,
        "first_errors": errors[:5],
        "gunicorn_cpu_us": gunicorn_us,
        "pg_cpu_us": pg_us,
        "pg_backends": pg_window["backends"],
        "pg_backends_exited": pg_window["exited"],
        "gunicorn_workers_recycled": workers_recycled,
        "load_cpu_us": load_cpu * 1e6,
        "db": db_delta,
        "req_per_s": total_requests / opts.seconds,
        "checks_per_s": checks / opts.seconds,
        "latency_p50_ms": (percentile(latencies, 0.5) or 0) * 1000,
        "latency_p99_ms": (percentile(latencies, 0.99) or 0) * 1000,
        "check_p50_ms": (percentile(check_latencies, 0.5) or 0) * 1000
        if scenario != "connect"
        else None,
        "check_p99_ms": (percentile(check_latencies, 0.99) or 0) * 1000
        if scenario != "connect"
        else None,
    }
    if pss_before is not None:
        result["pg_stat_statements"] = StatementsView.delta(pss_before, pss_after)
    per = checks if scenario != "connect" else total_requests
    result["per_unit"] = "check" if scenario != "connect" else "request"
    result["units"] = per
    if per:
        result["server_cpu_us_per_unit"] = (gunicorn_us + pg_us) / per
        result["gunicorn_cpu_us_per_unit"] = gunicorn_us / per
        result["pg_cpu_us_per_unit"] = pg_us / per
        result["load_cpu_us_per_unit"] = load_cpu * 1e6 / per
        if busy_before is not None:
            result["server_cpus_busy_us_per_unit"] = (
                (busy_after - busy_before) * 1e6 / CLOCK_TICKS / per
            )
    if total_requests:
        result["server_cpu_us_per_request"] = (gunicorn_us + pg_us) / total_requests
    return result


# --- statements, exactly: the same messages through the real view, in-process --------------------


def teep_client():
    from django.test import Client

    client = Client(headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.250"})

    def post(body: bytes, expect: int) -> bytes:
        response = client.post(
            "/tam",
            data=body,
            content_type="application/teep+cbor",
            headers={"Accept": "application/teep+cbor"},
        )
        if response.status_code != expect:
            raise RuntimeError(f"in-process: HTTP {response.status_code}, expected {expect}")
        return response.content

    return post


def profile_checks(fleet: Fleet, numbering_name: str, checks: int, limit: int = 30) -> str:
    """cProfile of `checks` nothing-due checks in-process (middleware, view, engine, database;
    no gunicorn), the functions by own time and by cumulative time: where the CPU goes."""
    import cProfile
    import io
    import pstats

    post = teep_client()
    key, report_key = fleet.driven[0]
    agent = LeanAgent(key, report_key, fleet.steady_held, None, numbering_name)

    def check():
        _, token = agent.read(post(b"", 200))
        post(agent.query_response(token), 204)

    for _ in range(5):
        check()
    started = time.process_time()
    for _ in range(checks):
        check()
    plain = (time.process_time() - started) / checks
    profiler = cProfile.Profile(time.process_time)  # CPU, not the waits on PostgreSQL
    profiler.enable()
    for _ in range(checks):
        check()
    profiler.disable()
    out = io.StringIO()
    out.write(
        f"in-process CPU of one nothing-due check (this process only: no gunicorn, no "
        f"PostgreSQL): {plain * 1e6:,.0f} µs; profile of {checks} checks:\n"
    )
    for order in ("tottime", "cumulative"):
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(limit)
    return out.getvalue()


def count_statements(fleet: Fleet, numbering_name: str, rounds: int) -> dict:
    """Per request kind: SQL statements (as django_assert_num_queries counts them: savepoints
    included, BEGIN/COMMIT not), writes, rows written and transactions, by running checks
    through the Django test client (middleware, view, engine, real database) with an
    execute_wrapper. Median over `rounds` after one warm-up check."""
    from django.db import connection

    post = teep_client()

    log: list = []

    def wrapper(execute, sql, params, many, context):
        in_atomic = connection.in_atomic_block
        result = execute(sql, params, many, context)
        rowcount = getattr(context.get("cursor"), "rowcount", -1)
        log.append((sql, rowcount, in_atomic))
        return result

    commits = [0]
    original_commit = connection.commit

    def counting_commit():
        commits[0] += 1
        return original_commit()

    def measured(body: bytes, expect: int):
        log.clear()
        commits[0] = 0
        answer = post(body, expect)
        statements = list(log)
        autocommitted = sum(1 for _, _, in_atomic in statements if not in_atomic)
        writes = [
            (sql, rows)
            for sql, rows, _ in statements
            if _verb(sql) in ("INSERT", "UPDATE", "DELETE")
        ]
        return answer, {
            "statements": len(statements),
            "writes": len(writes),
            "rows_written": sum(max(0, rows) for _, rows in writes),
            "transactions": commits[0] + autocommitted,
            "sql": [sql for sql, _, _ in statements],
        }

    results: dict[str, list] = {"connect": [], "nothing-due": [], "update": []}
    steady_key, steady_report = fleet.driven[0]
    update_key, update_report = fleet.updaters[0] if fleet.updaters else (None, None)
    steady = LeanAgent(steady_key, steady_report, fleet.steady_held, None, numbering_name)
    updater = (
        LeanAgent(
            update_key, update_report, fleet.steady_held, fleet.update_component, numbering_name
        )
        if update_key is not None
        else None
    )

    connection.commit = counting_commit
    try:
        with connection.execute_wrapper(wrapper):
            for round_ in range(rounds + 1):
                answer, connect = measured(b"", 200)
                _, token = steady.read(answer)
                _, response = measured(steady.query_response(token), 204)
                if round_:
                    results["connect"].append(connect)
                    results["nothing-due"].append({"connect": connect, "query-response": response})
                if updater is None:
                    continue
                answer, connect2 = measured(b"", 200)
                _, token = updater.read(answer)
                answer, update = measured(updater.query_response(token), 200)
                _, update_token = updater.read(answer)
                _, success = measured(updater.success(update_token), 204)
                if round_:
                    results["update"].append(
                        {"connect": connect2, "query-response": update, "success": success}
                    )
    finally:
        del connection.commit
    summary = {}
    for name, runs in results.items():
        if not runs:
            continue
        if name == "connect":
            summary[name] = _median_counts(runs)
            continue
        parts = {part: _median_counts([r[part] for r in runs]) for part in runs[0]}
        total = {
            key: sum(p[key] for p in parts.values())
            for key in ("statements", "writes", "rows_written", "transactions")
        }
        total["sql"] = [sql for p in parts.values() for sql in p["sql"]]
        summary[name] = {"total": total, "parts": parts}
    return summary


def _verb(sql: str) -> str:
    words = sql.lstrip().split(None, 1)
    return words[0].upper() if words else ""


def _median_counts(runs: list[dict]) -> dict:
    out = {
        key: statistics.median(r[key] for r in runs)
        for key in ("statements", "writes", "rows_written", "transactions")
    }
    out["sql"] = runs[-1]["sql"]
    out["varied"] = len({r["statements"] for r in runs}) > 1
    return out


def summarize_sql(sql: str, width: int = 150) -> str:
    text = re.sub(r"\s+", " ", sql).strip()
    text = re.sub(r'"', "", text)
    # SELECT lists are long and say little: keep the verb and what follows FROM.
    match = re.match(r"SELECT (.*?) FROM (.*)", text, re.S)
    if match and len(match.group(1)) > 40:
        text = f"SELECT … FROM {match.group(2)}"
    return text if len(text) <= width else text[: width - 1] + "…"


# --- the reference agent: the product agent, once, to build templates from what it holds --------


def reference_agent_check(agent, url: str, fleet: Fleet, numbering_name: str) -> None:
    """The product agent installs A and B through the server (Update -> Success); the lean
    clients then hold what it holds, and one more check proves their QueryResponse is the
    product agent's (same decoded message, same SUIT report payloads)."""
    from apps.teep.wire import cose, messages
    from apps.teep.wire.numbering import numbering_by_name

    result = agent.request_policy_check(url)
    if not result.ok or len(result.installed) < 2:
        raise RuntimeError(f"reference agent did not install both components: {result.to_json()}")
    held = {
        tuple(c.component_id): HeldComponent.from_agent(c) for c in agent.installed_components()
    }
    fleet.steady_held = [held[tuple(A_ID)]]
    fleet.update_component = held[tuple(B_ID)]

    seen = {}
    result = agent.request_policy_check(
        url, on_message=lambda direction, kind, body: seen.setdefault(kind, body)
    )
    if not result.ok or result.http_statuses != [200, 204]:
        raise RuntimeError(
            f"reference agent's second check was not nothing-due: {result.to_json()}"
        )
    numbering = numbering_by_name(numbering_name)
    lean = LeanAgent(
        agent.key.private_key,
        agent.report_key.private_key,
        [held[k] for k in held],
        None,
        numbering_name,
    )
    _, token = lean.read(seen["query-request"])
    ours = messages.decode(cose.parse(lean.query_response(token)).payload, numbering)
    theirs = messages.decode(cose.parse(seen["query-response"]).payload, numbering)

    def normalized(message):
        reports = tuple(cose.parse(r).payload for r in message.suit_reports or ())
        return dataclasses.replace(message, suit_reports=reports)

    if normalized(ours) != normalized(theirs):
        raise RuntimeError(
            f"the lean client's QueryResponse differs from the product agent's:\n{ours}\n{theirs}"
        )


# --- report --------------------------------------------------------------------------------------


def distance(value, target, unit="") -> str:
    """How far a figure is from its target (lower is better for every target of issue 11)."""
    if value is None:
        return "not measured"
    if value <= target:
        return f"meets target <= {target:g}{unit}"
    over = f"{value / target:.2f}x the target"
    return f"target <= {target:g}{unit}: {over}, cut {100 * (1 - target / value):.0f}%"


def fmt_us(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_report(report: dict, show_sql: bool) -> None:
    meta = report["meta"]
    print()
    print("=" * 100)
    print(f"tam-portal policy-check server benchmark, {meta['date']}, commit {meta['commit']}")
    print(f"command: {meta['command']}")
    print(
        f"machine: {meta['cores']} cores, load average before: {meta['loadavg_before']}, "
        f"Python {meta['python']}, PostgreSQL {meta['postgres']}"
    )
    print(f"server: {meta['server_command']}")
    print(
        f"  ({meta['server_args_source']}); CONN_MAX_AGE={meta['conn_max_age']}, "
        f"CONN_HEALTH_CHECKS={meta['conn_health_checks']} (settings.py), DEBUG off, "
        "rate limits off, JSON logs, metrics on"
    )
    print(f"  gunicorn on CPUs {meta['server_cpus'] or '(not pinned)'}")
    print(f"  PostgreSQL backends: {meta['pg_pinning']}")
    print(
        f"load: {meta['concurrency']} lean client processes (own session) on CPUs "
        f"{meta['load_cpus'] or '(not pinned)'}; window {meta['seconds']:g} s after "
        f"{meta['warmup']:g} s warm-up"
    )
    print(f"pg_stat_statements: {meta['pg_stat_statements']}; autovacuum: {meta['autovacuum']}")
    calibration = report.get("calibration") or []
    if calibration:
        spread = 100 * (max(calibration) / min(calibration) - 1)
        print(
            "machine speed (fixed Python loop on the server CPUs, ms CPU, at the start and after "
            f"each round): {', '.join(f'{c:.1f}' for c in calibration)} (spread {spread:.0f}%; "
            "the same code should cost the same: a large spread means a noisy host, so compare "
            "runs whose calibrations agree)"
        )
    print(
        f"{meta['repeat']} round(s) of windows, fleets alternating; each row is the window with "
        "the median CPU per unit"
    )
    print()
    print("Server CPU from /proc, per request for connect, per check otherwise (µs):")
    columns = (
        ("scenario", 12),
        ("fleet", 7),
        ("requests", 8),
        ("checks", 7),
        ("req/s", 7),
        ("CPU/unit", 9),
        ("gunicorn", 9),
        ("postgres", 9),
        ("CPU/req", 8),
        ("p50 ms", 7),
        ("p99 ms", 7),
        ("errors", 6),
    )
    print(
        " ".join(
            f"{name:<{width}}" if i == 0 else f"{name:>{width}}"
            for i, (name, width) in enumerate(columns)
        )
    )
    for run in report["runs"]:
        p50 = run["check_p50_ms"] if run["check_p50_ms"] is not None else run["latency_p50_ms"]
        p99 = run["check_p99_ms"] if run["check_p99_ms"] is not None else run["latency_p99_ms"]
        values = (
            run["scenario"],
            run["fleet"],
            run["requests"],
            run["checks"],
            f"{run['req_per_s']:.1f}",
            fmt_us(run.get("server_cpu_us_per_unit")),
            fmt_us(run.get("gunicorn_cpu_us_per_unit")),
            fmt_us(run.get("pg_cpu_us_per_unit")),
            fmt_us(run.get("server_cpu_us_per_request")),
            f"{p50:.1f}",
            f"{p99:.1f}",
            run["errors"],
        )
        print(
            " ".join(
                f"{value:<{width}}" if i == 0 else f"{value:>{width}}"
                for i, (value, (_, width)) in enumerate(zip(values, columns, strict=True))
            )
        )
    print()
    for run in report["runs"]:
        units, unit, db = max(1, run["units"]), run["per_unit"], run["db"]
        print(
            f"  {run['scenario']} on {run['fleet']:,}: {run['pg_backends']} PostgreSQL backends "
            f"({run['pg_backends_exited']} exited in the window), "
            f"{run['gunicorn_workers_recycled']} gunicorn workers recycled, "
            f"client CPU {fmt_us(run.get('load_cpu_us_per_unit'))} µs/{unit}"
        )
        rounds = ", ".join(
            f"{fmt_us(v)} ({c:.1f} ms)"
            for v, c in zip(run["all_cpu_us_per_unit"], run["all_calibration_ms"], strict=True)
        )
        print(
            f"    server CPU per {unit} in each round (calibration loop around it): {rounds}; "
            f"roughly adjusted to the speed at the start: "
            f"{fmt_us(run.get('adjusted_cpu_us_per_unit'))}"
        )
        if run.get("server_cpus_busy_us_per_unit") is not None:
            print(
                f"    server CPUs busy per {unit} (/proc/stat: every process and the kernel, "
                f"a cross-check): {fmt_us(run['server_cpus_busy_us_per_unit'])} µs"
            )
        print(
            f"    pg_stat_database per {unit} (approximate: backends flush about once a second): "
            f"{db['xact_commit'] / units:.1f} commits, rows {db['tup_inserted'] / units:.1f} "
            f"inserted, {db['tup_updated'] / units:.1f} updated, "
            f"{db['tup_deleted'] / units:.1f} deleted, {db['tup_fetched'] / units:.0f} fetched; "
            f"{db['blks_hit'] / units:.0f} buffer hits"
        )
        if "pg_stat_statements" in run:
            pss = run["pg_stat_statements"]
            print(
                f"    pg_stat_statements per {unit}: {pss['statements'] / units:.2f} statements "
                f"({pss['writes'] / units:.2f} writes, {pss['rows_written'] / units:.2f} rows); "
                f"+{pss['health_checks'] / units:.2f} health-check SELECT 1, "
                f"+{pss['transactions'] / units:.2f} BEGIN/COMMIT, "
                f"+{pss['foreign_key_checks'] / units:.2f} foreign-key checks by PostgreSQL"
            )
        if run["first_errors"]:
            print(f"    errors: {run['first_errors']}")
    statements = report.get("statements", {})
    if statements:
        print()
        print(
            "SQL statements, counted in-process through the real view (as "
            "django_assert_num_queries counts: savepoints yes, BEGIN/COMMIT no):"
        )
        for size, summary in statements.items():
            for name, data in summary.items():
                total = data["total"] if "total" in data else data
                parts = ""
                if "parts" in data:
                    parts = (
                        " ("
                        + ", ".join(
                            f"{part} {p['statements']:g}" for part, p in data["parts"].items()
                        )
                        + ")"
                    )
                print(
                    f"  {size:>7,} devices, {name:<12} {total['statements']:>3g} statements"
                    f"{parts}, {total['writes']:g} writes ({total['rows_written']:g} rows), "
                    f"{total['transactions']:g} transactions"
                )
        if meta.get("conn_health_checks"):
            print(
                "  not counted above: CONN_HEALTH_CHECKS adds a `SELECT 1` to every request "
                "served over a reused connection"
            )
        first = next(iter(statements.values()))
        for name in ("nothing-due", "update") if show_sql else ():
            if name not in first:
                continue
            print(f"\n  {name} check, statements in order:")
            for part, p in first[name]["parts"].items():
                print(f"   [{part}]")
                for number, sql in enumerate(p["sql"], 1):
                    print(f"    {number:>2}. {summarize_sql(sql)}")
    if report.get("profile"):
        print()
        print(report["profile"])
    if report.get("wire"):
        print()
        from bench.wire_cost import print_wire

        print_wire(report["wire"])
    print()
    print("Against issue 11's targets:")
    for line in report["targets"]:
        print(f"  {line}")
    print("=" * 100)


def target_lines(report: dict) -> list[str]:
    runs = {(r["scenario"], r["fleet"]): r for r in report["runs"]}
    fleets = sorted({r["fleet"] for r in report["runs"]} | set(report.get("statements", {})))
    small = fleets[0] if fleets else None
    counted = report.get("statements", {})
    nothing = counted.get(small, {}).get("nothing-due", {}).get("total", {})
    update = counted.get(small, {}).get("update", {}).get("total", {})
    connect = counted.get(small, {}).get("connect", {})

    def cpu(scenario, fleet, key="server_cpu_us_per_unit"):
        run = runs.get((scenario, fleet))
        return run.get(key) if run else None

    def line(what, value, target, unit="", shown=None):
        shown = shown if shown is not None else ("-" if value is None else f"{value:,.0f}{unit}")
        return f"{what}: {shown}  ({distance(value, TARGETS[target], unit)})"

    lines = [
        line(
            "nothing-due check, SQL statements", nothing.get("statements"), "nothing_due_statements"
        ),
        line(
            "nothing-due check, server CPU", cpu("nothing-due", small), "nothing_due_cpu_us", " µs"
        ),
        line(
            "update check (empty POST, QueryResponse -> Update, Success -> 204), SQL statements",
            update.get("statements"),
            "update_statements",
        ),
        line("empty POST, database writes", connect.get("writes"), "connect_writes"),
        line("empty POST, server CPU", cpu("connect", small), "connect_cpu_us", " µs")
        + f"  [the Go TAM: {GO_TAM_CONNECT_CPU_US} µs]",
    ]
    wire = report.get("wire")
    if wire:
        worst = max(wire["agents"].values(), key=lambda a: a["ratio"])
        lines.append(
            line(
                f"wire work of one check / raw cryptography ({worst['kind']} agent, the worse)",
                worst["ratio"],
                "wire_ratio",
                "x",
                shown=f"{worst['ratio']:.2f}x",
            )
        )
    if len(fleets) > 1:
        low, high = cpu("nothing-due", fleets[0]), cpu("nothing-due", fleets[-1])
        ratio = high / low if low and high else None
        lines.append(
            line(
                f"fleet flatness, nothing-due CPU {fleets[-1]:,} / {fleets[0]:,} devices",
                ratio,
                "fleet_ratio",
                shown="-" if ratio is None else f"{ratio:.2f}",
            )
        )
        big = counted.get(fleets[-1], {}).get("nothing-due", {}).get("total", {})
        if big and nothing:
            lines.append(
                f"fleet flatness, nothing-due statements {fleets[-1]:,} / {fleets[0]:,} "
                f"devices: {big['statements']:g} / {nothing['statements']:g}"
            )
    return lines


@dataclasses.dataclass
class Stand:
    """One fleet's database, its gunicorn and the meter of its PostgreSQL backends."""

    size: int
    db: str
    fleet: Fleet
    server: Server | None = None
    pg: PgMeter | None = None
    pss_connection: object = None
    statements_view: StatementsView | None = None

    def stop(self) -> None:
        if self.pg is not None:
            self.pg.stop()
        if self.server is not None:
            self.server.stop()
        if self.pss_connection is not None:
            self.pss_connection.close()
            self.pss_connection = None


CALIBRATION = """
import hashlib, json, time
started = time.process_time()
data = {"k%d" % i: list(range(i % 17)) for i in range(2000)}
for _ in range(40):
    hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
print(time.process_time() - started)
"""


def calibrate(cpus, times: int = 5) -> float:
    """CPU time (ms) of a fixed pure-Python workload on the server CPUs: the same code on the
    same machine should always cost the same, so a change between runs (or rounds) says the
    machine's speed changed (another tenant, frequency), not the portal. Median of `times`."""
    command = [sys.executable, "-c", CALIBRATION]
    if cpus:
        command = ["taskset", "-c", cpu_list_text(cpus), *command]
    samples = []
    for _ in range(times):
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip()) * 1000)
    return statistics.median(samples)


def median_runs(samples: list[dict], reference_ms: float | None) -> list[dict]:
    """Per (scenario, fleet): the window with the median server CPU per unit, with every
    window's value, and the median of the values adjusted to the machine's speed at the start
    of the run (CPU x reference / the calibration around that window)."""
    grouped: dict[tuple, list[dict]] = {}
    for run in samples:
        if reference_ms and run.get("server_cpu_us_per_unit") and run.get("calibration_ms"):
            run["adjusted_cpu_us_per_unit"] = (
                run["server_cpu_us_per_unit"] * reference_ms / run["calibration_ms"]
            )
        grouped.setdefault((run["scenario"], run["fleet"]), []).append(run)
    chosen = []
    for runs in grouped.values():
        ordered = sorted(runs, key=lambda r: r.get("server_cpu_us_per_unit") or 0)
        median = dict(ordered[(len(ordered) - 1) // 2])
        median["all_cpu_us_per_unit"] = [r.get("server_cpu_us_per_unit") for r in runs]
        median["all_calibration_ms"] = [r.get("calibration_ms") for r in runs]
        adjusted = [r["adjusted_cpu_us_per_unit"] for r in runs if "adjusted_cpu_us_per_unit" in r]
        median["adjusted_cpu_us_per_unit"] = statistics.median(adjusted) if adjusted else None
        chosen.append(median)
    return chosen


# --- main ----------------------------------------------------------------------------------------


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "")
    except OSError:
        return "unknown"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fleets of 200 and 2,000, 3 s windows, 1 s warm-up, few wire iterations",
    )
    parser.add_argument(
        "--fleet",
        type=int,
        nargs="+",
        help="fleet sizes (default 1000 100000); all scenarios "
        "run on the first, nothing-due on every one",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated subset of " + ", ".join(SCENARIOS),
    )
    parser.add_argument("--seconds", type=float, help="measured window per scenario (default 20)")
    parser.add_argument(
        "--repeat",
        type=int,
        help="rounds of windows, fleets alternating; the median window is reported (default 3)",
    )
    parser.add_argument("--warmup", type=float, help="warm-up before each window (default 5)")
    parser.add_argument(
        "--workers", type=int, help="gunicorn workers (default: README Deployment's -w)"
    )
    parser.add_argument(
        "--worker-class", help="gunicorn worker class (default: README's, i.e. sync)"
    )
    parser.add_argument("--threads", type=int, help="gunicorn --threads (gthread)")
    parser.add_argument(
        "--gunicorn-args", default="", help="more gunicorn arguments, appended (they win)"
    )
    parser.add_argument(
        "--server-cpus", help="CPUs for gunicorn and the PostgreSQL backends (default 0)"
    )
    parser.add_argument(
        "--load-cpus", help="CPUs for the load processes (default: every other CPU)"
    )
    parser.add_argument(
        "--concurrency", type=int, help="load processes (default max(8, 2 x workers))"
    )
    parser.add_argument(
        "--agents", type=int, default=64, help="devices the nothing-due load drives (default 64)"
    )
    parser.add_argument(
        "--update-agents", type=int, default=32, help="devices the update load drives (default 32)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="in-process rounds for the statement counts"
    )
    parser.add_argument(
        "--wire-iterations", type=int, help="wire micro-benchmark iterations (default 2000)"
    )
    parser.add_argument("--no-wire", action="store_true", help="skip the wire micro-benchmark")
    parser.add_argument(
        "--show-sql", action="store_true", help="list the statements of one check of each kind"
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="also profile N nothing-due checks in-process (cProfile) and print the top functions",
    )
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument(
        "--keep-db", action="store_true", help="do not drop the scratch databases (debugging)"
    )
    parser.add_argument("--load-worker", nargs=2, metavar=("SPEC", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    args.fleet = args.fleet or ([200, 2000] if quick else [1000, 100000])
    args.seconds = args.seconds or (3.0 if quick else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if quick else 5.0)
    args.wire_iterations = args.wire_iterations or (200 if quick else 2000)
    args.repeat = args.repeat or (1 if quick else 3)
    if quick:
        args.agents = min(args.agents, 16)
        args.update_agents = min(args.update_agents, 8)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def main(argv=None) -> None:
    opts = parse_args(argv)
    if opts.load_worker:
        load_worker(opts.load_worker[0], int(opts.load_worker[1]))
        return

    database_url = os.environ.get("DATABASE_URL", "")
    if urlsplit(database_url).scheme not in ("postgres", "postgresql"):
        sys.exit(
            "set DATABASE_URL=postgres://user@host:port/name: it names the PostgreSQL server and "
            "credentials; this benchmark creates and drops <name>_srv_* databases there"
        )
    base_name = database_name(database_url)

    # Gunicorn: README Deployment's command, then the overrides.
    try:
        gunicorn_args = readme_gunicorn_args()
        args_source = "README Deployment's command"
    except (OSError, ValueError, IndexError):
        gunicorn_args = [
            "-c",
            "python:tam_portal.gunicorn_conf",
            "tam_portal.wsgi",
            "-w",
            "4",
            "--timeout",
            "30",
            "--max-requests",
            "2000",
            "--max-requests-jitter",
            "200",
        ]
        args_source = "README Deployment's command could not be read: built-in copy"
    if opts.workers:
        gunicorn_args += ["-w", str(opts.workers)]
    if opts.worker_class:
        gunicorn_args += ["-k", opts.worker_class]
    if opts.threads:
        gunicorn_args += ["--threads", str(opts.threads)]
    gunicorn_args += shlex.split(opts.gunicorn_args)
    workers = int(gunicorn_option(gunicorn_args, "-w", "--workers", default="1"))
    opts.concurrency = opts.concurrency or max(8, 2 * workers)

    # CPUs: server on one side, load (and this process) on the other.
    available = sorted(os.sched_getaffinity(0))
    if len(available) >= 2 and shutil.which("taskset"):
        server_cpus = parse_cpu_list(opts.server_cpus) if opts.server_cpus else {available[0]}
        load_cpus = (
            parse_cpu_list(opts.load_cpus) if opts.load_cpus else set(available) - server_cpus
        )
        if not load_cpus or server_cpus & load_cpus:
            sys.exit(
                f"--server-cpus {cpu_list_text(server_cpus)} and --load-cpus "
                f"{cpu_list_text(load_cpus)} must be disjoint and non-empty"
            )
        os.sched_setaffinity(0, load_cpus)
    else:
        server_cpus = load_cpus = set()
        print(
            "fewer than 2 CPUs (or no taskset): nothing pinned; the load competes with the server",
            file=sys.stderr,
        )
    opts.load_cpu_set, opts.server_cpu_set = load_cpus, server_cpus

    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    workdir = Path(tempfile.mkdtemp(prefix="tam-bench-server-"))
    port = free_port()
    template_db = f"{base_name}_srv_tpl"
    env = prepare_environment(workdir, scratch_url(database_url, template_db), port)
    # This process configures Django exactly as the server does (nothing else inherited).
    os.environ.clear()
    os.environ.update(env)

    admin = admin_connection(database_url)
    pg_settings = {
        name: admin.execute(f"SHOW {name}").fetchone()[0]
        for name in ("server_version", "shared_preload_libraries", "autovacuum")
    }
    has_pss = "pg_stat_statements" in pg_settings["shared_preload_libraries"]
    created: list[str] = []

    def create_database(name: str, template: str | None = None) -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        created.append(name)

    report = {"meta": {}, "runs": [], "samples": [], "statements": {}, "calibration": []}
    stands: list[Stand] = []
    try:
        import django

        create_database(template_db)
        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        started = time.monotonic()
        call_command("migrate", "--no-input", verbosity=0)
        if has_pss:
            with connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        migrate_seconds = time.monotonic() - started
        connection.close()
        conn_max_age = settings.DATABASES["default"].get("CONN_MAX_AGE")

        from apps.agent.agent import TeepAgent
        from apps.teep.tam_keys import tam_keys
        from apps.teep.wire.numbering import CURRENT

        numbering_name = CURRENT.name
        # 1. Every fleet in its own database, served by its own gunicorn (all pinned alike), so
        #    that the windows can alternate between fleets: a slow drift of the machine's speed
        #    then touches every fleet alike instead of skewing the flatness ratio.
        for index, size in enumerate(opts.fleet):
            db = f"{base_name}_srv_{size}"
            stand_port = port if index == 0 else free_port()
            create_database(db, template_db)
            connection.settings_dict["NAME"] = db
            settings.DATABASES["default"]["NAME"] = db
            # Manifests name payload URIs on this fleet's own server.
            settings.TAM_PUBLIC_BASE_URL = f"http://127.0.0.1:{stand_port}"
            reference = TeepAgent(workdir / f"reference-{size}", key_type="p256")
            for key in tam_keys().public_keys:
                reference.add_tam_key(key)
            fleet = build_fleet(
                size,
                opts.agents,
                opts.update_agents if index == 0 else 0,
                reference.public_key_path.read_bytes(),
            )
            print(
                f"fleet of {size:,} devices built in {fleet.build_seconds:.1f} s", file=sys.stderr
            )
            connection.close()
            server_env = {
                **env,
                "DATABASE_URL": scratch_url(database_url, db),
                "TAM_PUBLIC_BASE_URL": f"http://127.0.0.1:{stand_port}",
            }
            stand = Stand(size=size, db=db, fleet=fleet)
            stands.append(stand)
            stand.server = Server(
                gunicorn_args, server_env, stand_port, server_cpus, workdir / f"gunicorn-{size}.log"
            )
            stand.server.wait_ready(workers)
            reference_agent_check(
                reference, f"http://127.0.0.1:{stand_port}/tam", fleet, numbering_name
            )
            if has_pss:
                stand.pss_connection = admin_connection(database_url, db)
                stand.statements_view = StatementsView(stand.pss_connection)
            exclude = {stand.pss_connection.info.backend_pid} if stand.pss_connection else set()
            stand.pg = PgMeter(db, server_cpus or None, exclude=exclude)
            stand.pg.poll()
            stand.pg.start()
        server_command = " ".join(shlex.quote(w) for w in stands[0].server.command)

        # 2. The windows, in rounds: each round runs every scenario on the first fleet and the
        #    nothing-due check on the others, alternating fleets.
        plan = [(stands[0], scenario) for scenario in opts.scenarios]
        plan += [(stand, "nothing-due") for stand in stands[1:] if "nothing-due" in opts.scenarios]
        report["calibration"].append(calibrate(server_cpus))
        for round_ in range(opts.repeat):
            if pg_settings["autovacuum"] != "on":
                # What autovacuum does in production: without it the planner keeps the row
                # counts of the freshly built fleet (e.g. devices_deliveryitem empty) and
                # reads the tables the windows grow with sequential scans.
                for stand in stands:
                    with admin_connection(database_url, stand.db) as analyzing:
                        analyzing.execute("ANALYZE")
            for stand, scenario in plan:
                print(
                    f"  round {round_ + 1}/{opts.repeat}: {scenario} on {stand.size:,} devices ...",
                    file=sys.stderr,
                )
                run = run_scenario(
                    scenario,
                    fleet=stand.fleet,
                    server=stand.server,
                    pg=stand.pg,
                    admin=admin,
                    statements_view=stand.statements_view,
                    dbname=stand.db,
                    opts=opts,
                    workdir=workdir,
                    numbering_name=numbering_name,
                )
                run["round"] = round_ + 1
                report["samples"].append(run)
            report["calibration"].append(calibrate(server_cpus))
        report["runs"] = median_runs(report["samples"], report["calibration"][0])

        pinning_notes = []
        for stand in stands:
            stand.stop()
            pg = stand.pg
            if not pg.last:
                pinning_notes.append(
                    f"no backend of {stand.db} found in /proc (a remote server?): PostgreSQL CPU "
                    "not measured, not pinned"
                )
            elif server_cpus and pg.pin_failures:
                pinning_notes.append(
                    f"pinning FAILED for {len(pg.pin_failures)} of {len(pg.last)} backends "
                    f"({next(iter(pg.pin_failures.values()))})"
                )
            elif server_cpus:
                pinning_notes.append(
                    f"{len(pg.pinned)} backends of {stand.db} pinned to CPUs "
                    f"{cpu_list_text(server_cpus)}"
                )

        # 3. Statements, in-process, on each fleet's database (the servers are stopped).
        for index, stand in enumerate(stands):
            connection.close()
            connection.settings_dict["NAME"] = stand.db
            settings.DATABASES["default"]["NAME"] = stand.db
            print(f"  statements on {stand.size:,} devices (in-process) ...", file=sys.stderr)
            if index > 0:
                stand.fleet.updaters = []
            counted = count_statements(stand.fleet, numbering_name, opts.rounds)
            if index > 0:
                counted.pop("connect", None)
            report["statements"][stand.size] = counted
            if opts.profile and index == 0:
                report["profile"] = profile_checks(stand.fleet, numbering_name, opts.profile)
            connection.close()
            if not opts.keep_db:
                admin.execute(f'DROP DATABASE IF EXISTS "{stand.db}"')
                created.remove(stand.db)

        if not opts.no_wire:
            print("  wire work (micro-benchmark) ...", file=sys.stderr)
            from bench.wire_cost import measure_wire

            report["wire"] = measure_wire(opts.wire_iterations)

        report["meta"] = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "commit": git_commit(),
            "cores": len(available),
            "loadavg_before": loadavg,
            "python": sys.version.split()[0],
            "postgres": pg_settings["server_version"],
            "server_command": server_command,
            "server_args_source": args_source,
            "conn_max_age": conn_max_age,
            "conn_health_checks": settings.DATABASES["default"].get("CONN_HEALTH_CHECKS"),
            "server_cpus": cpu_list_text(server_cpus),
            "load_cpus": cpu_list_text(load_cpus),
            "pg_pinning": "; ".join(pinning_notes) or "not pinned (fewer than 2 CPUs)",
            "repeat": opts.repeat,
            "concurrency": opts.concurrency,
            "seconds": opts.seconds,
            "warmup": opts.warmup,
            "pg_stat_statements": "preloaded: per-window counts below"
            if has_pss
            else "not in shared_preload_libraries (statements counted in-process only)",
            "autovacuum": pg_settings["autovacuum"]
            + (
                "" if pg_settings["autovacuum"] == "on" else " (ANALYZE before every round instead)"
            ),
            "migrate_s": migrate_seconds,
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        }
        report["targets"] = target_lines(report)
        print_report(report, opts.show_sql)
        if opts.json:
            Path(opts.json).write_text(json.dumps(report, indent=1, default=str))
    finally:
        for stand in stands:
            stand.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 (Django may never have been set up)
            pass
        if not opts.keep_db:
            for name in list(created):
                try:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except Exception as exc:  # noqa: BLE001
                    print(f"could not drop {name}: {exc}", file=sys.stderr)
        admin.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
