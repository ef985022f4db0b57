"""The TAM-side wire work of one policy check against raw `cryptography` (issue 11 target:
within 1.5x).

    .venv/bin/python bench/wire_cost.py [--iterations 2000]
        [--json after.json] [--baseline before.json] [--label NAME]

(bench/policy_check_server.py runs it too, with the server's keys.) No database, no HTTP.
`--json` saves the figures, `--baseline` prints them next to a saved run's (before/after).
The encoder's self-check (messages.ENCODE_SELF_CHECK) is off while measuring, as in production.

One check, as the engine does it today:
  send     outgoing.query_request(): build the QueryRequest, encode it, sign it as a COSE_Sign
           with ESP256 and Ed25519 (its token row write is stubbed out);
  receive  cose.parse() the QueryResponse, device_public_key() from the stored COSE_Key,
           cose.verify(), messages.decode(), and parse_report() of its SUIT report (the product
           agent sends one per installed component).
Raw: the same two signatures and the one verification with `cryptography`, keys built once,
including the DER <-> r||s conversion COSE's ECDSA needs. Each line is the median of
per-iteration perf_counter_ns; the totals are whole iterations (not sums of medians). When the
engine's calls change, change `send` / `receive` here with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COMPONENT = (b"TEEP-Device", b"SecureFS", b"bench", b"steady-ta")


def median_us(fn, iterations: int) -> float:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        started = clock()
        fn()
        samples.append(clock() - started)
    return statistics.median(samples) / 1000


class _DatabaseTouched(Exception):
    pass


def _no_database(execute, sql, params, many, context):
    raise _DatabaseTouched(sql)


@contextlib.contextmanager
def _offline():
    """No statement reaches the database, and the token row write of outgoing.query_request
    is stubbed out (the wire work is measured, not the INSERT)."""
    from unittest import mock

    from django.db import connection

    from apps.tam import outgoing

    with connection.execute_wrapper(_no_database), contextlib.ExitStack() as stack:
        if hasattr(getattr(outgoing, "tokens", None), "issue"):  # older trees stored tokens
            stack.enter_context(mock.patch.object(outgoing.tokens, "issue", lambda *a, **k: None))
        yield


def _query_request():
    from apps.tam import outgoing
    from apps.teep.wire import ciphersuites, messages

    return messages.QueryRequest(
        token=os.urandom(32),
        versions=ciphersuites.SUPPORTED_VERSIONS,
        supported_teep_cipher_suites=tuple(ciphersuites.TAM_OFFERED_SUITES),
        supported_suit_cose_profiles=ciphersuites.TAM_SUIT_COSE_PROFILES,
        data_item_requested=outgoing.DEFAULT_DATA_ITEMS,
    )


def _senders(tam_p256, tam_ed25519):
    """(send, description): outgoing.query_request when it runs without a database, else the
    wire calls it makes today."""
    from django.db import DatabaseError
    from django.utils import timezone

    from apps.tam import outgoing
    from apps.teep.wire import ciphersuites, cose, messages
    from apps.teep.wire.numbering import CURRENT

    now = timezone.now()

    def via_outgoing():
        return outgoing.query_request(CURRENT, suites=ciphersuites.TAM_OFFERED_SUITES, now=now)[0]

    def via_wire():
        payload = messages.encode(_query_request(), CURRENT)
        return cose.sign(payload, [(tam_p256, -9), (tam_ed25519, -19)])

    with _offline():
        try:
            via_outgoing()
            return via_outgoing, "outgoing.query_request (minted token, no database)"
        except (_DatabaseTouched, DatabaseError):
            return via_wire, "messages.encode + cose.sign (outgoing.query_request writes otherwise)"


def _raw_signer(tam_p256, tam_ed25519, payload: bytes):
    import cbor2
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    p256, ed = tam_p256.private_key, tam_ed25519.private_key
    ecdsa = ec.ECDSA(hashes.SHA256())
    to_be_signed = cbor2.dumps(["Signature", b"", cbor2.dumps({1: -9}), b"", payload])

    def raw_sign():
        r, s = decode_dss_signature(p256.sign(to_be_signed, ecdsa))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signature, ed.sign(to_be_signed)

    return raw_sign


def _conversions(first, second, iterations: int, *, private: bool = True) -> dict:
    """The per-call key conversions inside cose.sign / cose.verify today (TeepKey -> pycose
    COSE_Key object -> cryptography key); absent once the layer keeps its keys."""
    from apps.teep.wire import algorithms, cose

    keys = [k for k in (first, second) if k is not None]
    found = {}
    if hasattr(cose, "_pycose_key"):
        found[f"  of which TeepKey -> pycose key x{len(keys)} (cose._pycose_key)"] = median_us(
            lambda: [cose._pycose_key(k, private=private) for k in keys], iterations
        )
        suffix = "private" if private else "public"
        converters = {
            "p256": getattr(algorithms, f"_p256_{suffix}_from_pycose", None),
            "ed25519": getattr(algorithms, f"_ed25519_{suffix}_from_pycose", None),
        }
        if all(converters[k.kind] for k in keys):
            pycose_keys = [(converters[k.kind], cose._pycose_key(k, private=private)) for k in keys]
            found[f"  of which pycose key -> cryptography key x{len(keys)} (algorithms)"] = (
                median_us(lambda: [convert(pk) for convert, pk in pycose_keys], iterations)
            )
    return found


def _measure_agent(kind: str, send, raw_sign, decrypt_key, iterations: int, warm: int) -> dict:
    import cbor2
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from apps.devices import services as device_services
    from apps.devices.models import Device
    from apps.teep.wire import cose, messages
    from apps.teep.wire.keys import TeepKey
    from apps.teep.wire.numbering import CURRENT
    from apps.teep.wire.suit import SuitDigest, SystemProperties, build_report, parse_report

    agent, report_key = TeepKey.generate(kind), TeepKey.generate(kind)
    stored_key = cbor2.dumps(agent.public().to_cose_key(private=False), canonical=True)
    device = Device(kid=agent.kid.hex(), public_key=stored_key)
    token = os.urandom(32)
    digest = SuitDigest(-16, os.urandom(32))
    report = build_report(
        manifest_digest=SuitDigest(-16, os.urandom(32)),
        manifest_uri="https://tam.example/manifests/steady-ta",
        nonce=token,
        records=[SystemProperties(COMPONENT, {"image-digest": digest, "image-size": 4096})],
        signing_key=report_key,
    )
    response = messages.QueryResponse(
        token=token, tc_list=({0: list(COMPONENT), 3: digest.to_cbor()},), suit_reports=(report,)
    )
    body = cose.sign1(messages.encode(response, CURRENT), agent)

    def receive(with_reports=True):
        signed = cose.parse(body)
        key = device_services.device_public_key(device)
        message = messages.decode(cose.verify(signed, key), CURRENT)
        if with_reports:
            for raw in message.suit_reports or ():
                parse_report(raw, decrypt_key=decrypt_key)
        return message

    signed = cose.parse(body)
    key = device_services.device_public_key(device)
    verified = cose.verify(signed, key)
    parts = {
        "parse (cose.parse)": median_us(lambda: cose.parse(body), iterations),
        "device key from COSE_Key (device_public_key)": median_us(
            lambda: device_services.device_public_key(device), iterations
        ),
        "verify (cose.verify)": median_us(lambda: cose.verify(signed, key), iterations),
    }
    parts.update(_conversions(key, None, iterations, private=False))
    parts["decode (messages.decode)"] = median_us(
        lambda: messages.decode(verified, CURRENT), iterations
    )
    parts["SUIT report parse x1 (parse_report)"] = median_us(
        lambda: parse_report(report, decrypt_key=decrypt_key), iterations
    )

    # The same verification with cryptography, the key built once.
    structure = cbor2.loads(body).value
    to_be_verified = cbor2.dumps(["Signature1", structure[0], b"", structure[2]])
    signature, public, ecdsa = structure[3], agent.public_key, ec.ECDSA(hashes.SHA256())
    if kind == "p256":
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")

        def raw_verify():
            public.verify(encode_dss_signature(r, s), to_be_verified, ecdsa)
    else:

        def raw_verify():
            public.verify(signature, to_be_verified)

    raw_verify()  # raises if the structure above is not what the agent signed

    def raw_check():
        raw_sign()
        raw_verify()

    with _offline():
        for _ in range(warm):
            send()
            receive()
        check_us = median_us(lambda: (send(), receive()), iterations)
        check_without_reports_us = median_us(lambda: (send(), receive(False)), iterations)
        receive_us = median_us(receive, iterations)
        receive_without_reports_us = median_us(lambda: receive(False), iterations)
    raw_check_us = median_us(raw_check, iterations)
    return {
        "kind": kind,
        "receive_us": receive_us,
        "receive_without_reports_us": receive_without_reports_us,
        "receive_parts": parts,
        "raw_verify_us": median_us(raw_verify, iterations),
        "check_us": check_us,
        "check_without_reports_us": check_without_reports_us,
        "raw_check_us": raw_check_us,
        "ratio": check_us / raw_check_us,
        "ratio_without_reports": check_without_reports_us / raw_check_us,
    }


TARGET_RATIO = 1.5  # issue 11: one check's wire work within 1.5x of raw `cryptography`


@contextlib.contextmanager
def _production_encoder():
    """messages.encode() as production runs it: without decoding its own output (DEBUG and the
    test suite turn that on, apps/teep/apps.py). Yields how encode() ran."""
    from apps.teep.wire import messages

    if not hasattr(messages, "ENCODE_SELF_CHECK"):
        yield "always self-checked (no ENCODE_SELF_CHECK in this checkout)"
        return
    previous = messages.ENCODE_SELF_CHECK
    messages.ENCODE_SELF_CHECK = False
    try:
        yield "self-check off (ENCODE_SELF_CHECK = False, as in production)"
    finally:
        messages.ENCODE_SELF_CHECK = previous


def measure_wire(iterations: int = 2000) -> dict:
    """Per-operation medians (µs) for a P-256 and an Ed25519 agent. Django must be set up (the
    settings name the TAM keys); the database is never touched (a statement raises)."""
    with _production_encoder() as encoder:
        wire = _measure_wire(iterations)
    wire["encoder"] = encoder
    return wire


def _measure_wire(iterations: int) -> dict:
    from apps.teep.tam_keys import tam_keys
    from apps.teep.wire import cose, messages
    from apps.teep.wire.numbering import CURRENT

    keys = tam_keys()
    tam_p256, tam_ed25519 = keys.signing_key_for(-9), keys.signing_key_for(-19)
    warm = max(20, iterations // 20)
    send, send_path = _senders(tam_p256, tam_ed25519)
    request = _query_request()
    payload = messages.encode(request, CURRENT)
    signers = [(tam_p256, -9), (tam_ed25519, -19)]
    raw_sign = _raw_signer(tam_p256, tam_ed25519, payload)
    with _offline():
        for _ in range(warm):
            send()
        send_us = median_us(send, iterations)
        signatures = len(cose.parse(send()).signatures)
    send_parts = {
        "build message (messages.QueryRequest)": median_us(_query_request, iterations),
        "encode (messages.encode)": median_us(
            lambda: messages.encode(request, CURRENT), iterations
        ),
        "sign, 2 signatures (cose.sign)": median_us(
            lambda: cose.sign(payload, signers), iterations
        ),
    }
    send_parts.update(_conversions(tam_p256, tam_ed25519, iterations))
    return {
        "iterations": iterations,
        "send_path": send_path,
        "send_us": send_us,
        "send_parts": send_parts,
        "raw_sign_us": median_us(raw_sign, iterations),
        "query_request_signatures": signatures,
        "agents": {
            kind: _measure_agent(kind, send, raw_sign, tam_p256, iterations, warm)
            for kind in ("p256", "ed25519")
        },
    }


def _verdict(ratio: float) -> str:
    return "met" if ratio <= TARGET_RATIO else "NOT met"


def print_wire(wire: dict) -> None:
    print(f"TAM-side wire work of one check (medians of {wire['iterations']} iterations, µs):")
    if wire.get("encoder"):
        print(f"  messages.encode: {wire['encoder']}")
    print(
        f"  send: QueryRequest via {wire['send_path']}, COSE_Sign with "
        f"{wire['query_request_signatures']} signatures: {wire['send_us']:.0f}"
    )
    for name, value in wire["send_parts"].items():
        print(f"    {name:<60} {value:>8.1f}")
    print(f"    {'raw cryptography: ECDSA P-256 + Ed25519 sign':<60} {wire['raw_sign_us']:>8.1f}")
    for agent in wire["agents"].values():
        print(
            f"  receive: QueryResponse from a {agent['kind']} agent: {agent['receive_us']:.0f} "
            f"({agent['receive_without_reports_us']:.0f} without its SUIT report)"
        )
        for name, value in agent["receive_parts"].items():
            print(f"    {name:<60} {value:>8.1f}")
        print(f"    {'raw cryptography: verify':<60} {agent['raw_verify_us']:>8.1f}")
        print(
            f"  one check ({agent['kind']} agent): {agent['check_us']:.0f} vs raw "
            f"{agent['raw_check_us']:.0f} = {agent['ratio']:.2f}x "
            f"({agent['check_without_reports_us']:.0f} = {agent['ratio_without_reports']:.2f}x "
            f"without the SUIT report)"
        )
    print(f"Against issue 11's target (one check within {TARGET_RATIO}x of raw cryptography):")
    for agent in wire["agents"].values():
        print(
            f"  {agent['kind']:<8} agent: {agent['ratio']:.2f}x ({_verdict(agent['ratio'])}); "
            f"without the SUIT report {agent['ratio_without_reports']:.2f}x "
            f"({_verdict(agent['ratio_without_reports'])})"
        )


def print_comparison(before: dict, after: dict) -> None:
    """The same figures of two runs side by side (e.g. the commit before a change and after)."""
    print(f"Before / after (µs, medians; before: {before.get('label', 'baseline')}):")
    rows = [("send (QueryRequest built, encoded, signed)", before["send_us"], after["send_us"])]
    rows += [
        (f"  {name}", value, after["send_parts"][name])
        for name, value in before["send_parts"].items()
        if name in after["send_parts"]
    ]
    for kind, agent in before["agents"].items():
        other = after["agents"].get(kind)
        if other is None:
            continue
        rows.append((f"receive from a {kind} agent", agent["receive_us"], other["receive_us"]))
        rows += [
            (f"  {name}", value, other["receive_parts"][name])
            for name, value in agent["receive_parts"].items()
            if name in other["receive_parts"]
        ]
        rows.append((f"one check, {kind} agent", agent["check_us"], other["check_us"]))
        rows.append(("  raw cryptography", agent["raw_check_us"], other["raw_check_us"]))
    for name, old, new in rows:
        print(f"  {name:<62} {old:>8.1f} -> {new:>8.1f}  ({new / old:.2f}x)")
    print(f"Ratio to raw cryptography (target <= {TARGET_RATIO}x):")
    for kind, agent in before["agents"].items():
        other = after["agents"].get(kind)
        if other is None:
            continue
        print(
            f"  {kind:<8} agent: {agent['ratio']:.2f}x -> {other['ratio']:.2f}x "
            f"({_verdict(other['ratio'])}); without the SUIT report "
            f"{agent['ratio_without_reports']:.2f}x -> {other['ratio_without_reports']:.2f}x "
            f"({_verdict(other['ratio_without_reports'])})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--json", metavar="PATH", help="save the figures here")
    parser.add_argument(
        "--baseline", metavar="PATH", help="a --json file of an earlier run, to compare with"
    )
    parser.add_argument("--label", help="what this run measures, kept in --json (e.g. a commit)")
    args = parser.parse_args()
    # The settings need keys, not a database: development keys in a temporary folder.
    scratch = tempfile.mkdtemp(prefix="tam-wire-cost-")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "tam_portal.settings",
            "DEBUG": "true",
            "DATA_DIR": scratch,
            "TAM_KEY_DIR": os.path.join(scratch, "keys"),
            "TAM_GENERATE_DEVELOPMENT_KEYS": "true",
        }
    )
    os.environ.pop("TAM_SIGNING_KEY_FILES", None)
    import django

    django.setup()
    wire = measure_wire(args.iterations)
    wire["label"] = args.label or _git_commit()
    print_wire(wire)
    if args.json:
        Path(args.json).write_text(json.dumps(wire, indent=2))
    if args.baseline:
        print()
        print_comparison(json.loads(Path(args.baseline).read_text()), wire)


def _git_commit() -> str:
    import subprocess

    try:
        found = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return str(ROOT)
    return found.stdout.strip()


if __name__ == "__main__":
    main()
