"""Run the simulated TEEP Agent once: one RequestPolicyCheck against a TAM URI (by default
this portal's own TEEP endpoint, $TAM_PUBLIC_BASE_URL/tam)."""

import json
import uuid
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.agent.agent import Behaviour, TeepAgent
from apps.agent.state import DeviceIdentity
from apps.agent.summary import describe_result
from apps.teep.wire.errors import WireError
from apps.teep.wire.numbering import NUMBERINGS

from ._portal import RATE_LIMIT_HINT, MessageSaver, default_tam_uri, policy_check_with_retries

# What the agent remembers between runs (in its state folder): whether it attests, and the
# EAT claims it attests with, so --attest is given once.
ATTEST_SETTINGS_FILE = "attest.json"
DEFAULT_HWMODEL = "tam-portal-simulated-tee"
DEFAULT_HWVERSION = "1.0"


class Command(BaseCommand):
    help = (
        "Simulated TEEP Agent: keeps its keys and TEE in --state, runs one RequestPolicyCheck "
        "against --tam (otrp-over-http 5; default: this portal's TEEP endpoint) and prints "
        "what happened. --init, --tam-key and --signer-key alone only set the agent up."
    )

    def add_arguments(self, parser):
        parser.add_argument("--state", required=True, help="the agent's state folder")
        parser.add_argument(
            "--tam",
            help="TAM URI (default: this portal's, $TAM_PUBLIC_BASE_URL/tam, or /tam/draft-25 "
            "with --numbering draft-25)",
        )
        parser.add_argument(
            "--numbering",
            choices=sorted(NUMBERINGS),
            default="draft-26",
            help="TEEP wire numbering; draft-25 goes with the TAM's /tam/draft-25 URI",
        )
        parser.add_argument(
            "--key-type",
            choices=["p256", "ed25519"],
            default="p256",
            help="kind of key generated on first use",
        )
        parser.add_argument(
            "--init",
            action="store_true",
            help="create the keys; print the kid and the paths of the public keys to register",
        )
        parser.add_argument(
            "--tam-key",
            action="append",
            default=[],
            metavar="FILE",
            help="trust a TAM public key (PEM, COSE_Key hex, tam_keys export)",
        )
        parser.add_argument(
            "--signer-key",
            action="append",
            default=[],
            metavar="FILE",
            help="trust a Trusted Component signer key",
        )
        parser.add_argument(
            "--request",
            action="append",
            default=[],
            metavar="COMPONENT",
            help="RequestTA: component id as TEEP-Device/SecureFS/h'..'/ta or CBOR hex",
        )
        parser.add_argument(
            "--unrequest",
            action="append",
            default=[],
            metavar="COMPONENT",
            help="UnrequestTA: a component (or manifest component id) no longer needed",
        )
        attest = parser.add_mutually_exclusive_group()
        attest.add_argument(
            "--attest",
            action="store_true",
            help="answer attestation requests with Evidence signed by the simulated TEE's "
            "attestation key (created in the state folder; register keys/attester.pub.pem "
            "with the TAM as an attestation key). Remembered in the state folder.",
        )
        attest.add_argument(
            "--no-attest", action="store_true", help="stop attesting (forget --attest)"
        )
        parser.add_argument(
            "--hwmodel", help=f"EAT hwmodel claim (default {DEFAULT_HWMODEL}; remembered)"
        )
        parser.add_argument(
            "--hwversion", help=f"EAT hwversion claim (default {DEFAULT_HWVERSION}; remembered)"
        )
        parser.add_argument(
            "--save-messages",
            metavar="DIR",
            help="write each TEEP message of the policy check to DIR (NN-sent|received-TYPE.cbor, "
            "for teep_inspect), with the SUIT envelopes and reports they carry (.suit, for "
            "suit_inspect)",
        )
        parser.add_argument(
            "--max-wait",
            type=float,
            default=60.0,
            help="wait out 429/503 answers (Retry-After) for at most this many seconds in all",
        )
        parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
        parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
        knobs = parser.add_argument_group("failure simulation")
        knobs.add_argument("--fail-install", action="append", default=[], metavar="COMPONENT")
        knobs.add_argument("--temporary-error", action="store_true")
        knobs.add_argument("--tamper-signature", action="store_true")
        knobs.add_argument("--omit-kid", action="store_true")
        knobs.add_argument(
            "--es256", action="store_true", help="sign with ES256 (-7), as older agents"
        )
        legacy = parser.add_argument_group("agents in the field (apps.agent.agent.Behaviour)")
        legacy.add_argument("--selected-cipher-suite-label", action="store_true",
                            help="send option label 5 in the QueryResponse (draft-25 numbering)")
        legacy.add_argument("--empty-tc-list", action="store_true", help="always send tc-list []")
        legacy.add_argument("--verify-only-sign1-es256", action="store_true",
                            help="drop TAM messages other than COSE_Sign1 ES256, as libteep")
        legacy.add_argument("--chunked", action="store_true",
                            help="POST with Transfer-Encoding: chunked")
        legacy.add_argument("--host", metavar="HOST", help="fixed Host header, e.g. example.com")
        legacy.add_argument("--sign-reports-with-teep-key", action="store_true")
        identity = parser.add_argument_group("SUIT identity (kept in the state folder)")
        identity.add_argument("--vendor-id", action="append", default=[], metavar="UUID",
                              help="a SUIT vendor id this device matches (default: any)")
        identity.add_argument("--class-id", action="append", default=[], metavar="UUID",
                              help="a SUIT class id this device matches (default: any)")

    def handle(self, *args, **options):
        try:
            self._handle(**options)
        except (WireError, ValueError, OSError) as exc:
            raise CommandError(_one_line(exc)) from None

    def _handle(
        self,
        *,
        state,
        tam,
        numbering,
        key_type,
        init,
        tam_key,
        signer_key,
        request,
        unrequest,
        as_json,
        timeout,
        **options,
    ):
        behaviour = Behaviour(
            fail_install_of=frozenset(options["fail_install"]),
            temporary_error=options["temporary_error"],
            tamper_signature=options["tamper_signature"],
            omit_kid=options["omit_kid"],
            legacy_es256=options["es256"],
            legacy_selected_cipher_suite_label=options["selected_cipher_suite_label"],
            empty_tc_list=options["empty_tc_list"],
            verify_only_sign1_es256=options["verify_only_sign1_es256"],
            chunked_body=options["chunked"],
            fixed_host=options["host"],
            sign_reports_with_teep_key=options["sign_reports_with_teep_key"],
        )
        evidence_provider = _evidence_provider(
            Path(state),
            attest=options["attest"],
            no_attest=options["no_attest"],
            hwmodel=options["hwmodel"],
            hwversion=options["hwversion"],
        )
        agent = TeepAgent(
            state, numbering=numbering, key_type=key_type, behaviour=behaviour, http_timeout=timeout,
            evidence_provider=evidence_provider,
        )
        output = {}
        if init:
            output["kid"] = agent.kid.hex()
            output["public_key"] = str(agent.public_key_path.resolve())
            output["encryption_key"] = str(agent.encryption_public_key_path.resolve())
            if not as_json:
                self.stdout.write(f"kid {output['kid']}")
                self.stdout.write(f"public key {output['public_key']}")
                register = f"manage.py register_agent --public-key {output['public_key']}"
                self.stdout.write(f"register it with: {register}")
                self.stdout.write(f"encryption key {output['encryption_key']}")
                self.stdout.write(
                    "register it (personalization data) in the admin: Device encryption keys"
                )
        for role, files in (("tam", tam_key), ("signer", signer_key)):
            for path in files:
                with open(path, "rb") as handle:
                    data = handle.read()
                added = agent.add_tam_key(data) if role == "tam" else agent.add_signer_key(data)
                output.setdefault(f"{role}_keys_added", []).extend(k.kid.hex() for k in added)
                if not as_json:
                    for key in added:
                        self.stdout.write(f"trusted {role} key {key.kid.hex()}")
        if options["vendor_id"] or options["class_id"]:
            agent.set_identity(_identity(options["vendor_id"], options["class_id"]))
        for component in request:
            agent.request_ta(component)
        for component in unrequest:
            agent.unrequest_ta(component)

        if not tam and (init or tam_key or signer_key or options["vendor_id"] or options["class_id"]):
            # Setting the agent up; it contacts a TAM when asked to (--tam) or on a later run.
            if as_json:
                self.stdout.write(json.dumps(output, indent=2))
            return
        saver = None
        if options["save_messages"]:
            saver = MessageSaver(Path(options["save_messages"]), agent.numbering)
        result, waited = policy_check_with_retries(
            agent,
            tam or default_tam_uri(numbering),
            max_wait=options["max_wait"],
            on_message=saver,
        )
        if as_json:
            output["policy_check"] = result.to_json()
            if saver is not None:
                output["saved"] = [str(path) for path in saver.written]
            self.stdout.write(json.dumps(output, indent=2))
        else:
            for line in describe_result(result):
                self.stdout.write(line)
            if waited.retries:
                self.stdout.write(
                    f"  waited {waited.seconds:.0f} s for the TAM (Retry-After), "
                    f"{waited.retries} retries"
                )
            if saver is not None:
                for path in saver.written:
                    self.stdout.write(f"  saved {path}")
        if not result.ok:
            if result.http_status == 429:
                self.stderr.write(RATE_LIMIT_HINT)
            raise CommandError(_one_line(result.error))
        if result.failures:
            raise CommandError(
                _one_line(f"{len(result.failures)} failure(s): {result.failures[0]}")
            )


def _identity(vendor_ids, class_ids) -> DeviceIdentity:
    return DeviceIdentity(
        vendor_ids=tuple(uuid.UUID(value).bytes for value in vendor_ids),
        class_ids=tuple(uuid.UUID(value).bytes for value in class_ids),
    )


def _one_line(value) -> str:
    return " ".join(str(value).split())


def _evidence_provider(state: Path, *, attest, no_attest, hwmodel, hwversion):
    """Evidence for attestation requests when this agent attests: --attest once, remembered in
    the state folder (attest.json) with its EAT claims, until --no-attest."""
    settings_path = state / ATTEST_SETTINGS_FILE
    remembered = {}
    if settings_path.is_file():
        remembered = json.loads(settings_path.read_text())
    if no_attest:
        settings_path.unlink(missing_ok=True)
        return None
    if not (attest or remembered):
        return None
    claims = {
        "hwmodel": hwmodel or remembered.get("hwmodel") or DEFAULT_HWMODEL,
        "hwversion": hwversion or remembered.get("hwversion") or DEFAULT_HWVERSION,
    }
    if claims != remembered:
        state.mkdir(parents=True, exist_ok=True)
        settings_path.write_text(json.dumps(claims, indent=2) + "\n")
    from apps.agent.attestation import EatEvidenceProvider, load_or_create_attester, ueid_for

    attester = load_or_create_attester(state)
    return EatEvidenceProvider(
        attester_key=attester,
        ueid=ueid_for(attester),
        hwmodel=claims["hwmodel"].encode(),
        hwversion=claims["hwversion"],
    )
