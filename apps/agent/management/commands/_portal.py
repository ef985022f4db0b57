"""What teep_agent and simulate_fleet share: this portal's TAM URI, waiting out 429 / 503
answers (Retry-After), and saving the messages of a policy check as files."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from apps.agent.agent import PolicyCheckResult, TeepAgent
from apps.teep.wire import cose, messages
from apps.teep.wire.errors import WireError

# The TEEP endpoint of each numbering (DESIGN.md "Wire numbering": the URI selects it).
_ENDPOINT_BY_NUMBERING = {"draft-26": "teep", "draft-25": "teep-draft-25"}

# HTTP statuses after which the TAM asks to be contacted again later (Retry-After):
# 429 rate limit, 503 attestation appraisal still running (DESIGN.md bootstrap step 4).
RETRYABLE_STATUSES = (429, 503)

_SAVED_NAME = re.compile(r"^\d\d-(sent|received)-[a-z-]+(-(envelope|report)-\d+)?\.(cbor|suit)$")

RATE_LIMIT_HINT = (
    "The TAM answered 429 (too many requests from this address). To lift its per-source "
    "limit, start the TAM with TEEP_RATE_LIMIT_PER_SOURCE=N/SECONDS (default 600/60; 0/60 "
    "turns it off), e.g. a line TEEP_RATE_LIMIT_PER_SOURCE=0/60 in data/.env, then restart "
    "./scripts/run.sh; or lower --concurrency."
)


def default_tam_uri(numbering: str) -> str:
    """This portal's TEEP endpoint, from TAM_PUBLIC_BASE_URL (scripts/run.sh derives it from
    BIND), so the port chosen once is the one agents use."""
    path = reverse(_ENDPOINT_BY_NUMBERING.get(numbering, "teep"))
    return settings.TAM_PUBLIC_BASE_URL.rstrip("/") + path


@dataclass
class Waited:
    """Retry-After answers met by one or more policy checks, and the time spent waiting."""

    retries: int = 0
    seconds: float = 0.0
    rate_limited: int = 0  # 429 answers
    gave_up: int = 0  # checks still refused when the wait budget ran out

    def add(self, other: Waited) -> None:
        self.retries += other.retries
        self.seconds += other.seconds
        self.rate_limited += other.rate_limited
        self.gave_up += other.gave_up


def policy_check_with_retries(
    agent: TeepAgent,
    tam_uri: str,
    *,
    max_wait: float,
    stopping: threading.Event | None = None,
    on_message: Callable[[str, str, bytes], None] | None = None,
    sleep: Callable[[float], object] | None = None,
) -> tuple[PolicyCheckResult, Waited]:
    """One RequestPolicyCheck; a 429 or 503 with Retry-After is waited out and the check
    started again (a new session: the TAM's unanswered token simply expires), as long as the
    waits add up to at most `max_wait` seconds."""
    stopping = stopping or threading.Event()
    wait = sleep or stopping.wait
    waited = Waited()
    while True:
        result = agent.request_policy_check(tam_uri, on_message=on_message)
        if result.http_status == 429:
            waited.rate_limited += 1
        if result.ok or result.http_status not in RETRYABLE_STATUSES:
            return result, waited
        delay = max(1, result.retry_after if result.retry_after is not None else 1)
        if waited.seconds + delay > max_wait or stopping.is_set():
            waited.gave_up += 1
            return result, waited
        wait(delay)
        waited.seconds += delay
        waited.retries += 1


class MessageSaver:
    """Writes each TEEP message of a policy check to DIR/NN-<sent|received>-<type>.cbor, and
    what they carry for suit_inspect: the SUIT envelopes of an Update's manifest-list
    (NN-received-update-envelope-K.suit) and the SUIT reports of a Success, Error or
    QueryResponse (NN-sent-<type>-report-K.suit)."""

    def __init__(self, folder: Path, numbering):
        self.folder = Path(folder)
        self.numbering = numbering
        self.count = 0
        self.written: list[Path] = []

    def __call__(self, direction: str, message_type: str, body: bytes) -> None:
        if self.count == 0:
            self._forget_last_check()
        self.count += 1
        stem = f"{self.count:02d}-{direction}-{message_type}"
        self._write(f"{stem}.cbor", body)
        message = self._decode(body)
        envelopes = getattr(message, "manifest_list", None) or ()
        for index, envelope in enumerate(envelopes, 1):
            self._write(f"{stem}-envelope-{index}.suit", envelope)
        reports = getattr(message, "suit_reports", None) or ()
        for index, report in enumerate(reports, 1):
            self._write(f"{stem}-report-{index}.suit", report)

    def _forget_last_check(self) -> None:
        """DIR holds the messages of one policy check: those of an earlier one go."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in self.folder.iterdir():
            if _SAVED_NAME.match(path.name) and path.is_file():
                path.unlink()

    def _decode(self, body: bytes):
        try:
            signed = cose.parse(body)
            return messages.decode(signed.payload or b"", self.numbering)
        except WireError:
            return None  # saved as received; teep_inspect says what is wrong with it

    def _write(self, name: str, data: bytes) -> None:
        path = self.folder / name
        path.write_bytes(data)
        self.written.append(path)
