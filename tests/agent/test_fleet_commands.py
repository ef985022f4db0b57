"""simulate_fleet and teep_agent against this portal over real HTTP (live_server): the TAM is
checked before anything is registered, the fleet's state folder is kept so a second run
re-contacts the same devices, Retry-After is honoured, and teep_agent remembers --attest and
finds this portal's TEEP endpoint by itself."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from apps.attestation import services as attestation
from apps.components import services as catalogue
from apps.devices.models import Device
from apps.devices.services import register_agent
from apps.teep.wire import cose
from apps.teep.wire.keys import TeepKey
from tests.policies.factories import DeviceGroupFactory, PolicyFactory

pytestmark = pytest.mark.django_db(transaction=True)

TA_COMPONENT_ID = [
    b"TEEP-Device",
    b"SecureFS",
    bytes.fromhex("8d82573a926d4754935332dc29997f74"),
    b"ta",
]


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    from django.core.cache import cache

    cache.clear()  # rate-limit windows live in the (per-process) cache


@pytest.fixture
def portal(live_server, settings, tmp_path):
    """This portal, serving on a port other than 8000, with its data folder in tmp_path."""
    settings.TAM_PUBLIC_BASE_URL = live_server.url
    settings.DATA_DIR = tmp_path / "data"
    return live_server.url


@pytest.fixture
def rollout(portal):
    """hello-ta released and required on the devices tagged "simulated"."""
    component = catalogue.create_component(
        name="hello-ta", component_id=TA_COMPONENT_ID, actor=None
    )
    catalogue.upload_binary(
        component=component,
        binary_file=ContentFile(b"Hello, Secure World!", name="hello.ta"),
        version_label="1.0",
        sequence_number=1,
        actor=None,
        release=True,
    )
    return PolicyFactory(
        group=DeviceGroupFactory(name="simulated", tags=["simulated"]), component=component
    )


def fleet(*args):
    out, err = StringIO(), StringIO()
    call_command("simulate_fleet", *args, "--json", stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- simulate_fleet ---------------------------------------------------------------------------


def test_an_unreachable_tam_registers_nothing(portal, settings):
    with pytest.raises(CommandError, match="not usable.*Nothing was registered"):
        fleet("--tam", f"http://127.0.0.1:{closed_port()}/tam", "--devices", "3")
    assert not Device.objects.exists()
    assert not (settings.DATA_DIR / "fleet").exists()


def test_another_tam_is_refused_before_registering(portal, settings):
    """A TEEP endpoint whose QueryRequest none of this portal's TAM keys verifies."""
    other_key = TeepKey.generate("p256")
    body = cose.sign1(b"\x80", other_key, other_key.default_algorithm, kid=other_key.kid)

    class OtherTam(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/teep+cbor")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), OtherTam)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(CommandError, match="does not sign with this portal's TAM keys"):
            fleet("--tam", f"http://127.0.0.1:{server.server_port}/tam", "--devices", "2")
    finally:
        server.shutdown()
        server.server_close()
    assert not Device.objects.exists()


def test_the_fleet_is_kept_so_a_second_run_shows_the_removal(rollout):
    first, _ = fleet("--devices", "3", "--concurrency", "2")  # this portal's TAM by default
    assert first["installs"] == 3 and first["failures"] == 0, first
    kids = set(Device.objects.values_list("kid", flat=True))
    assert len(kids) == 3

    rollout.effect = "forbidden"
    rollout.save()
    second, _ = fleet("--devices", "3", "--concurrency", "2")
    assert second["removals"] == 3 and second["failures"] == 0, second
    assert set(Device.objects.values_list("kid", flat=True)) == kids  # the same devices


def test_temporary_makes_new_devices_every_run(portal):
    fleet("--devices", "2", "--temporary")
    fleet("--devices", "2", "--temporary")
    assert Device.objects.count() == 4


def test_rate_limited_checks_wait_for_retry_after_and_say_how_to_lift_the_limit(
    portal, settings
):
    settings.TEEP_RATE_LIMIT_PER_SOURCE = "5/2"
    summary, err = fleet("--devices", "4", "--concurrency", "4", "--max-wait", "30")
    assert summary["ok"] == 4 and summary["failures"] == 0, summary
    waited = summary["retry_after"]
    assert waited["rate_limited"] > 0 and waited["retries"] > 0 and waited["gave_up"] == 0
    assert "TEEP_RATE_LIMIT_PER_SOURCE" in err


def test_the_wait_is_bounded(portal, settings):
    settings.TEEP_RATE_LIMIT_PER_SOURCE = "3/60"
    summary, err = fleet("--devices", "3", "--concurrency", "3", "--max-wait", "0")
    assert summary["retry_after"]["gave_up"] > 0
    assert summary["failures"] > 0 and "429" in json.dumps(summary["http_statuses"])
    assert "TEEP_RATE_LIMIT_PER_SOURCE" in err


def test_progress_goes_to_stdout_as_one_redrawn_line(rollout):
    out = StringIO()
    call_command("simulate_fleet", "--devices", "2", stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "2/2" in text and "\r" in text
    bar_line = next(line for line in text.split("\n") if "2/2" in line)
    assert bar_line.count("\r") >= 1  # redrawn in place, not one line per update
    assert "installs       2" in text


# --- teep_agent -------------------------------------------------------------------------------


def agent_command(*args):
    out = StringIO()
    call_command("teep_agent", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def trust_tam_keys(state, tmp_path):
    keys = tmp_path / "tam-keys.txt"
    out = StringIO()
    call_command("tam_keys", "export", stdout=out)
    keys.write_text(out.getvalue())
    agent_command("--state", str(state), "--tam-key", str(keys))


def test_teep_agent_contacts_this_portal_without_tam_uri(rollout, tmp_path, settings):
    state = tmp_path / "agent1"
    agent_command("--state", str(state), "--init")
    trust_tam_keys(state, tmp_path)
    register_agent(
        public_key_bytes=(state / "keys" / "agent.pub.pem").read_bytes(),
        name="agent1",
        tags=["simulated"],
    )
    out = agent_command("--state", str(state))  # no --tam
    assert f"RequestPolicyCheck {settings.TAM_PUBLIC_BASE_URL}/tam (draft-26)" in out
    assert "installed TEEP-Device/SecureFS" in out


def test_teep_agent_remembers_attest(portal, tmp_path):
    state = tmp_path / "agent2"
    agent_command("--state", str(state), "--init", "--attest", "--hwmodel", "lab-board")
    trust_tam_keys(state, tmp_path)
    attestation.register_attestation_key(
        public_key_bytes=(state / "keys" / "attester.pub.pem").read_bytes(), name="lab TEE"
    )
    kid = TeepKey.from_pem((state / "keys" / "agent.pub.pem").read_bytes()).kid.hex()

    agent_command("--state", str(state))  # no --attest: the first contact attests anyway
    device = Device.objects.get(kid=kid)
    assert device.registration == Device.Registration.ATTESTED
    assert device.attributes.get("hwmodel") == b"lab-board".hex()  # the EAT claim's bytes

    agent_command("--state", str(state), "--no-attest")
    assert not (state / "attest.json").exists()


def test_save_messages_writes_what_the_inspectors_read(rollout, tmp_path):
    state, saved = tmp_path / "agent3", tmp_path / "messages"
    agent_command("--state", str(state), "--init")
    trust_tam_keys(state, tmp_path)
    register_agent(
        public_key_bytes=(state / "keys" / "agent.pub.pem").read_bytes(), name="agent3"
    )
    agent_command(
        "--state",
        str(state),
        "--save-messages",
        str(saved),
        "--request",
        "TEEP-Device/SecureFS/h'8d82573a926d4754935332dc29997f74'/ta",
    )
    names = sorted(path.name for path in saved.iterdir())
    assert names == [
        "01-received-query-request.cbor",
        "02-sent-query-response.cbor",
        "03-received-update-envelope-1.suit",
        "03-received-update.cbor",
        "04-sent-success-report-1.suit",
        "04-sent-success.cbor",
    ]
    out = StringIO()
    call_command(
        "teep_inspect",
        str(saved / "03-received-update.cbor"),
        "--key",
        str(tmp_path / "tam-keys.txt"),
        stdout=out,
    )
    inspected = json.loads(out.getvalue())
    assert inspected["cose"]["signature"] == "valid" and inspected["message"]["type"] == "update"
    out = StringIO()
    call_command("suit_inspect", str(saved / "03-received-update-envelope-1.suit"), stdout=out)
    assert "suit-envelope" in json.loads(out.getvalue())

    # The folder holds the last check only.
    agent_command("--state", str(state), "--save-messages", str(saved))
    assert sorted(path.name for path in saved.iterdir()) == [
        "01-received-query-request.cbor",
        "02-sent-query-response-report-1.suit",
        "02-sent-query-response.cbor",
    ]
