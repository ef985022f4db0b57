"""Which registered device sent a TEEP message: the key its signature is to be verified with
(TEEP 4.1.2 step 4). Nothing here is authenticated yet; the engine verifies with the key of
the device found, and an unknown sender goes to attestation (apps/tam/bootstrap.py).

By the kid of the signature (RFC 9679 thumbprint, TEEP 5). Agents built on older drafts may
send none (DESIGN.md "Cipher suites and agents from older drafts"; an empty kid counts as
none). Then, in order:
1. an Update token in the still-unverified payload names the device it was minted for (an
   Update's Success or Error: `_device_named_by_token`, the one place that reads tokens);
2. the keys of the devices registered as kid-less (`Device.accepts_kidless`: `register_agent
   --kidless`, the admin, the API) are tried, at most TEEP_KIDLESS_MAX_CANDIDATES of them: the
   device whose key verifies the signature sent it. With more such devices than that the
   message is refused (KidlessRefused, audited and logged), never scanned without bound. No key
   verifies: an unknown agent, asked to attest like one with an unknown kid.
"""

from __future__ import annotations

import logging

from django.conf import settings

from apps.devices.models import Device
from apps.devices.services import cached_key_from_cose_key
from apps.teep import tokens
from apps.teep.wire import cose, messages
from apps.teep.wire.errors import CoseError
from apps.teep.wire.numbering import Numbering

logger = logging.getLogger(__name__)


class KidlessRefused(Exception):
    """A message without a kid that the TAM will not try to match (the reason is the text)."""


def find_device(signed: cose.CoseMessage, numbering: Numbering) -> Device | None:
    """The device whose key is to verify `signed`, or None (an unknown agent).
    KidlessRefused: no kid, and more kid-less devices than TEEP_KIDLESS_MAX_CANDIDATES."""
    kids = [signature.kid.hex() for signature in signed.signatures if signature.kid]
    if kids:
        return Device.objects.filter(kid__in=kids).order_by("pk").first()
    device_id = find_kidless_device_id(signed, numbering)
    return Device.objects.filter(pk=device_id).first() if device_id is not None else None


def find_kidless_device_id(signed: cose.CoseMessage, numbering: Numbering) -> int | None:
    """For a message without a kid: the id of its device, or None. The engine locks that row
    next (apps/devices/snapshot.py)."""
    device_id = _device_named_by_token(signed, numbering)
    if device_id is not None:
        return device_id
    device = _device_by_kidless_signature(signed)
    return device.pk if device is not None else None


def _device_named_by_token(signed: cose.CoseMessage, numbering: Numbering) -> int | None:
    """The device an Update token in the unverified payload was minted for (a Success or an
    Error answering an Update names its device; apps/teep/tokens.py)."""
    token = messages.peek_token(signed.payload or b"", numbering)
    return tokens.peek_device_id(token) if token is not None else None


def _device_by_kidless_signature(signed: cose.CoseMessage) -> Device | None:
    bound = settings.TEEP_KIDLESS_MAX_CANDIDATES
    if bound <= 0:
        return None
    flagged = Device.objects.filter(accepts_kidless=True).order_by("pk")
    candidates = list(flagged.values_list("pk", "public_key")[: bound + 1])
    if len(candidates) > bound:
        logger.warning(
            "TEEP message without a kid refused: more than TEEP_KIDLESS_MAX_CANDIDATES (%d) devices are"
            " registered as kid-less; raise the setting or clear the flag of devices that send a kid",
            bound,
        )
        raise KidlessRefused(
            f"no kid, and more than TEEP_KIDLESS_MAX_CANDIDATES ({bound}) devices are registered as"
            " kid-less: not tried"
        )
    algs = {signature.alg for signature in signed.signatures}
    matches = [pk for pk, public_key in candidates if _verifies(signed, bytes(public_key), algs)]
    if len(matches) != 1:
        return None
    return Device.objects.filter(pk=matches[0]).first()


def _verifies(signed: cose.CoseMessage, cose_key: bytes, algs: set) -> bool:
    try:
        key = cached_key_from_cose_key(cose_key)
    except ValueError:
        return False
    if not algs & set(key.algorithms):
        return False  # the signature's algorithm is not one this key type signs with
    try:
        cose.verify(signed, key)
    except CoseError:
        return False
    return True
