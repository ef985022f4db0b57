"""One TEEP exchange as the engine sees it: what it answers, and the facts its audit row
keeps (DESIGN.md "Audit": device, message types, token, outcome, sizes, duration, why dropped)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from apps.audit.services import record_exchange
from apps.teep.wire.numbering import Numbering

logger = logging.getLogger("apps.tam.engine")


@dataclass(frozen=True)
class TamAnswer:
    """What to send back: a TEEP message (body) or nothing."""

    body: bytes | None
    outcome: str  # "query-request", "update", "nothing-due", "dropped"
    reason: str = ""
    message_type: str = ""

    @property
    def dropped(self) -> bool:
        return self.outcome == "dropped"


class TamUnavailable(Exception):
    """A backend the TAM needs (e.g. the Verifier) is unreachable or too slow: 503."""

    def __init__(self, retry_after: int, backend: str):
        super().__init__(f"{backend} unavailable")
        self.retry_after = retry_after
        self.backend = backend


class TamRateLimited(Exception):
    def __init__(self, retry_after: int, scope: str):
        super().__init__(f"too many requests from this {scope}")
        self.retry_after = retry_after
        self.scope = scope


@dataclass
class Exchange:
    """Facts about one exchange, gathered for its audit entry."""

    numbering: Numbering
    source_ip: str | None
    size_in: int
    started: float = field(default_factory=time.monotonic)
    device_kid: str = ""
    type_in: str = ""
    detail: dict = field(default_factory=dict)

    def audit(self, answer: TamAnswer, along_with=None) -> TamAnswer:
        record_exchange(
            along_with=along_with,
            action=f"teep.{self.type_in or 'unknown'}" if self.size_in else "teep.connect",
            outcome=answer.outcome,
            device_kid=self.device_kid,
            reason=answer.reason,
            source_ip=self.source_ip,
            detail={
                "numbering": self.numbering.name,
                "in": self.type_in or ("empty" if not self.size_in else "unparsed"),
                "out": answer.message_type or None,
                "bytes_in": self.size_in,
                "bytes_out": len(answer.body or b""),
                "duration_ms": round((time.monotonic() - self.started) * 1000, 2),
                **self.detail,
            },
        )
        return answer

    def answer(self, body: bytes | None, outcome: str, reason: str = "", message_type: str = "", *,
               along_with=None) -> TamAnswer:
        """`along_with`: the device's contact write (devices.services.contact_statement),
        written with the audit row."""
        return self.audit(TamAnswer(body, outcome, reason, message_type), along_with)

    def drop(self, reason: str) -> TamAnswer:
        logger.info("TEEP message dropped: %s (device %s)", reason, self.device_kid or "unknown")
        return self.audit(TamAnswer(None, "dropped", reason))
