"""Simulate a fleet of TEEP Agents against a TAM (this portal, or another sharing its database)."""

import json
import signal
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.agent.agent import TeepAgent
from apps.agent.summary import fleet_summary
from apps.devices.services import DeviceError, register_agent
from apps.teep.tam_keys import tam_keys
from apps.teep.wire.errors import WireError
from apps.teep.wire.numbering import NUMBERINGS


class Command(BaseCommand):
    help = (
        "Create N simulated agents (temporary state folders), register their keys in this "
        "portal, trust its TAM keys, and run their RequestPolicyChecks C at a time."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tam", required=True, help="TAM URI, e.g. http://localhost:8000/tam")
        parser.add_argument("--devices", type=int, required=True)
        parser.add_argument("--concurrency", type=int, default=8)
        parser.add_argument("--rounds", type=int, default=1, help="policy checks per device")
        parser.add_argument(
            "--request",
            action="append",
            default=[],
            metavar="COMPONENT",
            help="every agent asks for this component (RequestTA)",
        )
        parser.add_argument("--numbering", choices=sorted(NUMBERINGS), default="draft-26")
        parser.add_argument("--key-type", choices=["p256", "ed25519", "mixed"], default="p256")
        parser.add_argument(
            "--tag", action="append", default=[], help="tag the devices (default: simulated)"
        )
        parser.add_argument(
            "--state-dir", help="keep the agents' folders here instead of a temp dir"
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
        parser.add_argument("--json", dest="as_json", action="store_true")
        parser.add_argument("--no-progress", action="store_true")

    def handle(
        self,
        *args,
        tam,
        devices,
        concurrency,
        rounds,
        request,
        numbering,
        key_type,
        tag,
        state_dir,
        timeout,
        as_json,
        no_progress,
        **options,
    ):
        if devices < 1 or concurrency < 1 or rounds < 1:
            raise CommandError("--devices, --concurrency and --rounds must be at least 1")
        stopping = threading.Event()
        previous = _on_sigterm(stopping.set)
        temp = None
        try:
            if state_dir:
                root = Path(state_dir)
                root.mkdir(parents=True, exist_ok=True)
            else:
                temp = tempfile.TemporaryDirectory(prefix="teep-fleet-")
                root = Path(temp.name)
            agents = self._create_agents(
                root, devices, numbering, key_type, tag or ["simulated"], request, timeout
            )
            results = self._run(agents, tam, concurrency, rounds, stopping, no_progress)
        except (WireError, OSError) as exc:
            raise CommandError(" ".join(str(exc).split())) from None
        finally:
            _restore_sigterm(previous)
            if temp is not None:
                temp.cleanup()

        summary = fleet_summary(results)
        summary.update(
            devices=devices, rounds=rounds, concurrency=concurrency, interrupted=stopping.is_set()
        )
        if as_json:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self._print(summary)

    def _create_agents(self, root, devices, numbering, key_type, tags, request, timeout):
        trusted = tam_keys().public_keys
        signer_pems = _signer_pems()
        agents = []
        for index in range(devices):
            kind = key_type if key_type != "mixed" else ("p256", "ed25519")[index % 2]
            agent = TeepAgent(
                root / f"agent-{index:05d}",
                numbering=numbering,
                key_type=kind,
                http_timeout=timeout,
            )
            for key in trusted:
                agent.add_tam_key(key)
            for pem in signer_pems:
                agent.add_signer_key(pem)
            for component in request:
                agent.request_ta(component)
            try:
                register_agent(
                    public_key_bytes=agent.key.public_pem(),
                    name=f"sim-{index:05d}-{agent.kid.hex()[:8]}",
                    tags=tags,
                )
            except DeviceError as exc:
                if "already registered" not in str(exc):  # a kept --state-dir, second run
                    raise CommandError(str(exc)) from None
            agents.append(agent)
        return agents

    def _run(self, agents, tam, concurrency, rounds, stopping, no_progress):
        results = []
        bar = tqdm(
            total=len(agents) * rounds,
            file=self.stdout,
            disable=no_progress,
            unit="check",
            dynamic_ncols=True,
        )
        lock = threading.Lock()

        def run_agent(agent):
            mine = []
            for _ in range(rounds):
                if stopping.is_set():
                    break
                mine.append(agent.request_policy_check(tam))
                with lock:
                    bar.update(1)
            return mine

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = [pool.submit(run_agent, agent) for agent in agents]
            for future in as_completed(futures):
                results.extend(future.result())
        bar.close()
        return results

    def _print(self, summary):
        latency = summary["latency_ms"]
        statuses = ", ".join(f"{code}: {count}" for code, count in summary["http_statuses"].items())
        interrupted = " - interrupted" if summary["interrupted"] else ""
        self.stdout.write(
            f"{summary['devices']} devices x {summary['rounds']} rounds"
            f" (concurrency {summary['concurrency']}){interrupted}"
        )
        self.stdout.write(f"policy checks  {summary['policy_checks']} ({summary['ok']} clean)")
        self.stdout.write(f"exchanges      {summary['exchanges']}")
        self.stdout.write(f"installs       {summary['installs']}")
        self.stdout.write(f"removals       {summary['removals']}")
        self.stdout.write(f"failures       {summary['failures']}")
        self.stdout.write(f"HTTP statuses  {statuses or '-'}")
        self.stdout.write(
            f"latency ms     p50 {latency['p50']}  p90 {latency['p90']}  p99 {latency['p99']}"
            f"  max {latency['max']}"
        )
        for error, count in summary["errors"].items():
            self.stdout.write(f"  {count} x {error}")


def _signer_pems() -> list[str]:
    """TC signer keys registered in the catalogue, so agents accept envelopes they signed."""
    try:
        from apps.components.models import SignerKey
    except ImportError:
        return []
    return list(SignerKey.objects.values_list("public_pem", flat=True))


def _on_sigterm(callback):
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: callback())


def _restore_sigterm(previous):
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
