"""TEEP messages and their COSE layer as JSON for people (teep_inspect, the admin).

Field names are the draft's ("query-request", "token", "tc-list", ...); byte strings are
hex; component ids are shown both as hex elements and in readable form.
"""

from dataclasses import fields
from typing import Any

import cbor2

from apps.teep.wire import messages
from apps.teep.wire.algorithms import ALGORITHM_NAMES
from apps.teep.wire.component_ids import component_id_text
from apps.teep.wire.cose import CoseMessage
from apps.teep.wire.numbering import Numbering


def to_jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": to_jsonable(value.value)}
    return value


def _component_id(value) -> dict:
    return {"hex": [bytes(p).hex() for p in value], "text": component_id_text(value)}


# DESIGN.md decision 11: accepted from other TAMs, shown as what it is.
TAGGED_ENVELOPE_NOTE = (
    "SUIT_Envelope_Tagged (107) inside manifest-list; the TEEP CDDL says untagged"
)


def _envelope_item(item: bytes) -> dict:
    """One manifest-list entry: its bytes (hex) and whether it carries the SUIT tag 107."""
    entry: dict[str, Any] = {"size": len(item), "tagged": messages.is_tagged_envelope(item)}
    if entry["tagged"]:
        entry["note"] = TAGGED_ENVELOPE_NOTE
    entry["envelope"] = bytes(item).hex()
    return entry


def message_to_json(message: messages.TeepMessage, numbering: Numbering) -> dict:
    out: dict[str, Any] = {"type": messages.message_type_name(message), "numbering": numbering.name}
    for f in fields(message):
        value = getattr(message, f.name)
        if value is None or f.name == "ignored_labels":
            continue
        name = f.name.replace("_", "-")
        if name in ("unneeded-manifest-list",):
            out[name] = [_component_id(c) for c in value]
        elif name == "manifest-list":
            out[name] = [_envelope_item(item) for item in value]
        elif name == "requested-tc-list":
            out[name] = [
                {
                    "component-id": _component_id(info.component_id),
                    **({"tc-manifest-sequence-number": info.tc_manifest_sequence_number}
                       if info.tc_manifest_sequence_number is not None else {}),
                    **({"have-binary": info.have_binary} if info.have_binary is not None else {}),
                }
                for info in value
            ]
        elif name == "tc-list":
            out[name] = [
                {("system-component-id" if k == 0 else str(k)): (_component_id(v) if k == 0 else to_jsonable(v))
                 for k, v in claims.items()}
                for claims in value
            ]
        elif name == "err-code":
            out[name] = value
            out["err-name"] = numbering.err_code_names.get(value, "unknown")
        else:
            out[name] = to_jsonable(value)
    if message.ignored_labels:
        out["ignored-labels"] = list(message.ignored_labels)
    return out


def cose_to_json(parsed: CoseMessage) -> dict:
    return {
        "structure": parsed.structure,
        "tagged": parsed.tagged,
        "signatures": [
            {
                "alg": s.alg,
                "alg-name": ALGORITHM_NAMES.get(s.alg, "unknown"),
                "kid": s.kid.hex() if s.kid is not None else None,
            }
            for s in parsed.signatures
        ],
    }
