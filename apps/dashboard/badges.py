"""Coloured status badges, the same on every console page.

A badge is `<span class="badge badge-TONE">label</span>`; the colours live in
console/console.css (light and dark themes), never in style attributes, so the pages keep
working under a Content-Security-Policy without 'unsafe-inline'. The label is always the text
itself: colour only repeats what the word says (readable without colour and without CSS).
"""

from __future__ import annotations

from django.utils.html import format_html
from django.utils.safestring import SafeString

TONES = ("ok", "info", "warn", "bad", "muted")

# value -> tone, per kind of state. A value not listed is shown in the neutral tone.
STATE_TONES: dict[str, dict[str, str]] = {
    # apps.devices.models.Device.State
    "device": {"active": "ok", "registered": "info", "untrusted": "bad", "retired": "muted"},
    # apps.devices.models.DeliveryItem.State
    "delivery": {"sent": "info", "succeeded": "ok", "failed": "bad", "expired": "warn"},
    # apps.policies.models.QueuedAction.State
    "action": {
        "queued": "info",
        "delivered": "warn",
        "succeeded": "ok",
        "failed": "bad",
        "cancelled": "muted",
    },
    # apps.components.models.ComponentVersion.State
    "version": {"draft": "info", "released": "ok", "compromised": "bad", "withdrawn": "muted"},
    # AuditEvent.outcome: what the TAM answered, or how an operator action ended.
    "outcome": {
        "ok": "ok",
        "update": "ok",
        "query-request": "ok",
        "nothing-due": "ok",
        "dropped": "bad",
        "rejected": "bad",
        "error": "bad",
        "failed": "bad",
    },
    # Attestation appraisal status (apps.attestation.models.AttestationRecord.Status).
    "appraisal": {
        "affirming": "ok",
        "warning": "warn",
        "contraindicated": "bad",
        "none": "muted",
        "error": "warn",
    },
}


def badge(label, tone: str = "muted", *, title: str = "") -> SafeString:
    if tone not in TONES:
        raise ValueError(f"unknown badge tone {tone!r}")
    if title:
        return format_html('<span class="badge badge-{}" title="{}">{}</span>', tone, title, label)
    return format_html('<span class="badge badge-{}">{}</span>', tone, label)


def state_badge(kind: str, value: str, label: str | None = None) -> SafeString:
    """The badge of one state value of `kind` (see STATE_TONES); `label` defaults to it."""
    tone = STATE_TONES[kind].get(value or "", "muted")
    return badge(label if label is not None else value, tone)
