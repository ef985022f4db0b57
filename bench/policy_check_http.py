"""Policy-check exchanges per second against the portal served by gunicorn on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tam_bench \
        .venv/bin/python bench/policy_check_http.py --agents 40 --seconds 20 --concurrency 8

One policy check = empty POST -> QueryRequest (COSE_Sign, 2 signatures) -> QueryResponse
(tc-list with the one TA the agent holds) -> 204: the steady state of a fleet. Prints
checks/s, p50/p99 latency of a whole check, and, measured in the same run, the TAM-side
crypto + CBOR work of one check alone (no DB, no HTTP), so the ratio shows how far the TAM
is from its crypto limit. Loopback only; bounded in time; stops by itself.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def prepare_environment(workdir: Path, port: int) -> dict:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (it is reset by this benchmark)")
    env = {
        **os.environ,
        "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "DATA_DIR": str(workdir / "data"),
        "TAM_KEY_DIR": str(workdir / "keys"),
        "TAM_GENERATE_DEVELOPMENT_KEYS": "true",
        "TAM_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "TEEP_RATE_LIMIT_PER_SOURCE": "0/60",
        "TEEP_RATE_LIMIT_PER_DEVICE": "0/60",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    return env


def setup_fleet(agents: int, workdir: Path):
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    from apps.agent.agent import TeepAgent
    from apps.components import services as catalogue
    from apps.devices.services import register_agent
    from apps.teep.tam_keys import tam_keys

    call_command("flush", "--no-input", verbosity=0)
    call_command("migrate", "--no-input", verbosity=0)
    component_id = [b"TEEP-Device", b"SecureFS", b"bench-ta"]
    component = catalogue.create_component(name="bench-ta", component_id=component_id, actor=None)
    catalogue.upload_binary(
        component=component, binary_file=ContentFile(os.urandom(4096), name="bench.ta"),
        version_label="1", sequence_number=1, actor=None, release=True,
    )
    fleet = []
    for index in range(agents):
        agent = TeepAgent(workdir / "agents" / f"a{index}", key_type="p256" if index % 2 else "ed25519")
        for key in tam_keys().public_keys:
            agent.add_tam_key(key)
        register_agent(public_key_bytes=agent.public_key_path.read_bytes(), name=f"bench-{index}")
        agent.request_ta(component_id)
        fleet.append(agent)
    return fleet


def drive(agents, url, stop_at, queue):
    """One load process: policy checks round-robin over its agents until stop_at."""
    ok, failed = [], []
    position = 0
    while time.time() < stop_at:
        agent = agents[position % len(agents)]
        position += 1
        started = time.perf_counter()
        result = agent.request_policy_check(url)
        elapsed = time.perf_counter() - started
        if result.ok and result.http_statuses == [200, 204]:
            ok.append(elapsed)
        else:
            failed.append(result.error or str(result.http_statuses))
    queue.put((ok, failed))


def crypto_and_cbor_alone(iterations: int) -> float:
    """Seconds of TAM-side wire work per policy check: build+sign the QueryRequest
    (COSE_Sign, ESP256 + Ed25519), parse+verify+decode the QueryResponse."""
    import cbor2

    from apps.tam import engine
    from apps.teep.tam_keys import tam_keys
    from apps.teep.wire import ciphersuites, cose, messages
    from apps.teep.wire.keys import TeepKey

    keys = tam_keys()
    agent_key = TeepKey.generate("p256")
    claims = {0: [b"TEEP-Device", b"SecureFS", b"bench-ta"], 3: cbor2.dumps([-16, os.urandom(32)])}
    response = cose.sign1(messages.encode(messages.QueryResponse(token=os.urandom(32), tc_list=(claims,))), agent_key)
    signers = [(keys.signing_key_for(a), a) for a in (-9, -19)]
    started = time.perf_counter()
    for _ in range(iterations):
        request = messages.QueryRequest(
            token=os.urandom(32),
            supported_teep_cipher_suites=ciphersuites.TAM_OFFERED_SUITES,
            supported_suit_cose_profiles=ciphersuites.TAM_SUIT_COSE_PROFILES,
            data_item_requested=engine.DEFAULT_DATA_ITEMS,
        )
        cose.sign(messages.encode(request), signers)
        messages.decode(cose.verify(cose.parse(response), agent_key.public()))
    return (time.perf_counter() - started) / iterations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="tam-bench-"))
    port = free_port()
    env = prepare_environment(workdir, port)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tam_portal.settings")
    fleet = setup_fleet(args.agents, workdir)
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "tam_portal.wsgi", "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    url = f"http://127.0.0.1:{port}/tam"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        # Warm-up: every agent installs the TA once (not measured).
        for agent in fleet:
            result = agent.request_policy_check(url)
            if not result.ok:
                sys.exit(f"warm-up failed: {result.error}")

        # Load comes from separate processes (one per --concurrency), each driving its own
        # agents, so the driver's own Python does not serialize on one GIL.
        if args.concurrency > len(fleet):
            sys.exit("--concurrency must not exceed --agents")
        import multiprocessing

        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        stop_at = time.time() + args.seconds
        drivers = [
            context.Process(target=drive, args=(fleet[i :: args.concurrency], url, stop_at, queue))
            for i in range(args.concurrency)
        ]
        began = time.monotonic()
        for process in drivers:
            process.start()
        latencies, failures = [], []
        for _ in drivers:
            ok, failed = queue.get(timeout=args.seconds + 120)
            latencies += ok
            failures += failed
        for process in drivers:
            process.join(timeout=30)
        wall = time.monotonic() - began
    finally:
        server.terminate()
        server.wait(timeout=30)

    per_check = crypto_and_cbor_alone(300)
    checks_per_second = len(latencies) / wall
    print(f"machine: {os.cpu_count()} cores, gunicorn sync workers: {args.workers}, "
          f"agents: {args.agents}, concurrency: {args.concurrency}, {args.seconds:.0f} s")
    print(f"policy checks: {len(latencies)} ok, {len(failures)} failed")
    print(f"policy checks/s: {checks_per_second:.1f}  (HTTP requests/s: {2 * checks_per_second:.1f})")
    if latencies:
        print(f"latency of one check: p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms")
    print(f"TAM crypto + CBOR alone per check: {per_check * 1e6:.0f} us "
          f"-> {1 / per_check:.0f} checks/s per core")
    print(f"ratio (served / crypto limit of {args.workers} cores): "
          f"{checks_per_second / (args.workers / per_check):.2%}")
    if failures:
        print(f"first failure: {failures[0]}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
