"""Run the simulated TEEP Agent once: one RequestPolicyCheck against a TAM URI."""

import json
import uuid

from django.core.management.base import BaseCommand, CommandError

from apps.agent.agent import Behaviour, TeepAgent
from apps.agent.state import DeviceIdentity
from apps.agent.summary import describe_result
from apps.teep.wire.errors import WireError
from apps.teep.wire.numbering import NUMBERINGS


class Command(BaseCommand):
    help = (
        "Simulated TEEP Agent: keeps its keys and TEE in --state, runs one RequestPolicyCheck "
        "against --tam (otrp-over-http 5) and prints what happened."
    )

    def add_arguments(self, parser):
        parser.add_argument("--state", required=True, help="the agent's state folder")
        parser.add_argument("--tam", help="TAM URI, e.g. http://localhost:8000/tam")
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
        parser.add_argument(
            "--attest",
            action="store_true",
            help="answer attestation requests with Evidence signed by the simulated TEE's "
            "attestation key (created in the state folder; register keys/attester.pub.pem "
            "with the TAM as an attestation key)",
        )
        parser.add_argument("--hwmodel", default="tam-portal-simulated-tee", help="EAT hwmodel claim")
        parser.add_argument("--hwversion", default="1.0", help="EAT hwversion claim")
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
        evidence_provider = None
        if options["attest"]:
            from apps.agent.attestation import EatEvidenceProvider, load_or_create_attester, ueid_for

            attester = load_or_create_attester(state)
            evidence_provider = EatEvidenceProvider(
                attester_key=attester, ueid=ueid_for(attester),
                hwmodel=options["hwmodel"].encode(), hwversion=options["hwversion"],
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

        if not tam:
            if not (
                init or tam_key or signer_key or request or unrequest
                or options["vendor_id"] or options["class_id"]
            ):
                raise CommandError("nothing to do: give --tam URL (or --init, --tam-key, ...)")
            if as_json:
                self.stdout.write(json.dumps(output, indent=2))
            return
        result = agent.request_policy_check(tam)
        if as_json:
            output["policy_check"] = result.to_json()
            self.stdout.write(json.dumps(output, indent=2))
        else:
            for line in describe_result(result):
                self.stdout.write(line)
        if not result.ok:
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
