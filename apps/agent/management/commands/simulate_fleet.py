"""Simulate a fleet of TEEP Agents against a TAM (this portal, or another sharing its database).

The agents live in a state folder that is kept (DATA_DIR/fleet by default), so a second run
re-contacts the same devices: what the TAM installed in the first run it may remove in the
next. Before anything is registered the TAM is contacted once (reachable, and signing with
this portal's keys); 429 and 503 answers are waited out as their Retry-After says.
"""

import json
import signal
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.agent import transport
from apps.agent.agent import TeepAgent
from apps.agent.summary import fleet_summary
from apps.devices.models import Device
from apps.devices.services import DeviceError, register_agent
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import cose
from apps.teep.wire.errors import WireError
from apps.teep.wire.numbering import NUMBERINGS

from ._portal import (
    RATE_LIMIT_HINT,
    RETRYABLE_STATUSES,
    Waited,
    default_tam_uri,
    policy_check_with_retries,
)


class Command(BaseCommand):
    help = (
        "Create (or reuse) N simulated agents in a kept state folder, register their keys in "
        "this portal, trust its TAM keys, and run their RequestPolicyChecks C at a time."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--tam",
            help="TAM URI (default: this portal's, $TAM_PUBLIC_BASE_URL/tam, or /tam/draft-25 "
            "with --numbering draft-25)",
        )
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
        folder = parser.add_mutually_exclusive_group()
        folder.add_argument(
            "--state-dir",
            help="the agents' folders, kept between runs (default: DATA_DIR/fleet, ./data/fleet)",
        )
        folder.add_argument(
            "--temporary",
            action="store_true",
            help="use a temporary state folder, deleted at the end (new devices every run)",
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
        parser.add_argument(
            "--max-wait",
            type=float,
            default=120.0,
            help="per device, wait out 429/503 answers (Retry-After) for at most this many "
            "seconds in all before counting the check as failed",
        )
        parser.add_argument("--json", dest="as_json", action="store_true")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_true",
            dest="no_input",
            help="accepted for symmetry; the command never asks anything",
        )

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
        temporary,
        timeout,
        max_wait,
        as_json,
        no_progress,
        **options,
    ):
        if devices < 1 or concurrency < 1 or rounds < 1:
            raise CommandError("--devices, --concurrency and --rounds must be at least 1")
        tam = tam or default_tam_uri(numbering)
        say = (lambda line: None) if as_json else self.stdout.write
        stopping = threading.Event()
        previous = _on_sigterm(stopping.set)
        temp = None
        waited = Waited()
        try:
            trusted = tam_keys().public_keys
            say(f"Contacting the TAM at {tam} ...")
            waited.add(_check_tam(tam, trusted, timeout, max_wait, stopping))
            if temporary:
                temp = tempfile.TemporaryDirectory(prefix="teep-fleet-")
                root = Path(temp.name)
            else:
                root = Path(state_dir) if state_dir else settings.DATA_DIR / "fleet"
                root.mkdir(parents=True, exist_ok=True)
            agents, new = self._create_agents(
                root, devices, numbering, key_type, tag or ["simulated"], request, timeout,
                trusted,
            )
            say(
                f"{devices} agents in {root}: {new} new and registered, {devices - new} known"
                + (" (temporary folder)" if temp else "")
            )
            results, fleet_waited = self._run(
                agents, tam, concurrency, rounds, stopping, no_progress or as_json, max_wait
            )
            waited.add(fleet_waited)
        except (WireError, OSError) as exc:
            raise CommandError(" ".join(str(exc).split())) from None
        finally:
            _restore_sigterm(previous)
            if temp is not None:
                temp.cleanup()

        summary = fleet_summary(results)
        summary.update(
            devices=devices,
            rounds=rounds,
            concurrency=concurrency,
            interrupted=stopping.is_set(),
            state_dir=None if temp else str(root),
            retry_after={
                "retries": waited.retries,
                "waited_s": round(waited.seconds, 1),
                "rate_limited": waited.rate_limited,
                "gave_up": waited.gave_up,
            },
        )
        if as_json:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self._print(summary)
        if waited.rate_limited:
            self.stderr.write(RATE_LIMIT_HINT)

    def _create_agents(self, root, devices, numbering, key_type, tags, request, timeout, trusted):
        """(the agents, how many were new). Agent folders from an earlier run are reused."""
        signer_pems = _signer_pems()
        agents = []
        new = 0
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
            if not Device.objects.filter(kid=agent.kid.hex()).exists():
                try:
                    register_agent(
                        public_key_bytes=agent.key.public_pem(),
                        name=f"sim-{index:05d}-{agent.kid.hex()[:8]}",
                        tags=tags,
                    )
                    new += 1
                except DeviceError as exc:
                    if "already registered" not in str(exc):  # registered meanwhile
                        raise CommandError(str(exc)) from None
            agents.append(agent)
        return agents, new

    def _run(self, agents, tam, concurrency, rounds, stopping, no_progress, max_wait):
        results = []
        waited = Waited()
        # STYLE.md 11: progress goes through self.stdout (tqdm writes partial lines).
        bar = tqdm(
            total=len(agents) * rounds,
            file=_PartialLines(self.stdout),
            disable=no_progress,
            unit="check",
            dynamic_ncols=True,
        )
        lock = threading.Lock()

        def run_agent(agent):
            mine, mine_waited = [], Waited()
            for _ in range(rounds):
                if stopping.is_set():
                    break
                result, check_waited = policy_check_with_retries(
                    agent, tam, max_wait=max_wait, stopping=stopping
                )
                mine.append(result)
                mine_waited.add(check_waited)
                with lock:
                    bar.update(1)
            return mine, mine_waited

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = [pool.submit(run_agent, agent) for agent in agents]
            for future in as_completed(futures):
                mine, mine_waited = future.result()
                results.extend(mine)
                waited.add(mine_waited)
        bar.close()
        return results, waited

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
        waited = summary["retry_after"]
        if waited["retries"] or waited["gave_up"]:
            self.stdout.write(
                f"Retry-After    {waited['retries']} retries, waited {waited['waited_s']} s"
                f" ({waited['rate_limited']} x 429; {waited['gave_up']} checks gave up)"
            )
        if summary["state_dir"]:
            self.stdout.write(
                f"agents kept in {summary['state_dir']}: the next run re-contacts them"
            )


def _check_tam(tam, trusted, timeout, max_wait, stopping) -> Waited:
    """Contact the TAM once, as an agent starts (an empty POST), before registering anything:
    it must answer with a QueryRequest signed by one of this portal's TAM keys."""
    waited = Waited()
    while True:
        try:
            answer = transport.post_teep(tam, b"", timeout=timeout)
            break
        except transport.TransportError as exc:
            if exc.status == 429:
                waited.rate_limited += 1
            delay = max(1, exc.retry_after or 1)
            if (
                exc.status in RETRYABLE_STATUSES
                and waited.seconds + delay <= max_wait
                and not stopping.is_set()
            ):
                stopping.wait(delay)
                waited.seconds += delay
                waited.retries += 1
                continue
            raise CommandError(
                f"The TAM at {tam} is not usable: {exc}. Nothing was registered. Is the portal "
                "running (./scripts/run.sh), and is --tam its TEEP URI?"
            ) from None
    if answer.status != 200 or not answer.body:
        raise CommandError(
            f"{tam} answered HTTP {answer.status} without a QueryRequest: not a TEEP endpoint? "
            "Nothing was registered."
        )
    try:
        signed = cose.parse(answer.body)
    except WireError as exc:
        raise CommandError(
            f"{tam} answered something that is not a signed TEEP message ({exc}). "
            "Nothing was registered."
        ) from None
    for key in trusted:
        try:
            cose.verify(signed, key)
            return waited
        except WireError:
            continue
    raise CommandError(
        f"The TAM at {tam} does not sign with this portal's TAM keys (manage.py tam_keys "
        "export): it is another TAM, or runs with another data folder. Nothing was registered."
    )


class _PartialLines:
    """A file for tqdm over Django's OutputWrapper, which would end every write with a newline
    (tqdm redraws its bar with carriage returns)."""

    def __init__(self, wrapper):
        self._wrapper = wrapper

    def write(self, text):
        self._wrapper.write(text, ending="")

    def flush(self):
        self._wrapper.flush()


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
