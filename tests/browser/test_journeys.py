"""The operator portal as people use it: journeys in a real headless Chromium.

1. An operator publishes a TA and a policy through the admin; three agents install it over HTTP.
2. A security officer (password + TOTP) marks that version compromised and watches it removed.
3. A viewer reads one device's whole history.
4. An operator releases a new version from its page and follows the rollout to the devices
   in each state.
5. A security officer drills down a compromise response to its devices and exports them.
6. An operator retires a device; its next message is dropped and it leaves the rollout.
7. An auditor goes from a device to its whole exchange history, by name.
8. The dashboard fits a 1,280 px window and a phone.

Screenshots land in test-artifacts/ (browser-*.png).
"""

import hashlib
import re

import pytest
from django.core.files.base import ContentFile

from apps.components.models import ComponentVersion, TrustedComponent
from apps.devices.models import DeliveryItem, Device, InstalledComponent, SuitReport
from apps.policies.models import CompromiseResponse, DeviceGroup, Effect, Policy, QueuedAction

from .conftest import (
    FLEET_SIZE,
    FLEET_TAG,
    TA_BINARY,
    TA_NAME,
    check_in,
    log_in,
    make_agent,
    screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TA_ID_TEXT = "['TEEP-Device', 'SecureFS', h'8d82573a926d4754935332dc29997f74', 'ta']"


def readonly(page, field: str) -> str:
    """The text of a read-only field on an admin change page."""
    return page.inner_text(f".field-{field} .readonly").strip()


def inline(page, title: str):
    """An inline group of a change page, by its heading."""
    return page.locator(".inline-group", has=page.locator("h2", has_text=title))


def progress_counts(page) -> dict[str, str]:
    """The compromise progress table as {row heading: value}."""
    return page.eval_on_selector_all(
        "table.compromise-progress tr",
        "rows => Object.fromEntries(rows.map(r => [r.querySelector('th').innerText.trim(),"
        " r.querySelector('td').innerText.trim()]))",
    )


def test_operator_publishes_a_ta_with_a_policy_and_the_fleet_installs_it(
    portal, tam_uri, new_page, operator, artifacts_dir, tmp_path
):
    page = new_page()
    log_in(page, portal, operator)

    # The catalogue entry: Appendix E's component id, typed as the agent reports it.
    page.goto(f"{portal}/admin/components/trustedcomponent/add/")
    page.fill("#id_name", TA_NAME)
    page.fill("#id_vendor", "Example Vendor")
    page.fill("#id_component_id_text", TA_ID_TEXT)
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    component = TrustedComponent.objects.get(name=TA_NAME)

    # Upload the TA binary: the TAM builds and signs its manifest, and releases it.
    binary = tmp_path / "secure-fs.ta"
    binary.write_bytes(TA_BINARY)
    digest = hashlib.sha256(TA_BINARY).hexdigest()
    page.goto(f"{portal}/admin/components/componentversion/")
    page.click("text=Upload a TA binary or signed envelope")
    page.wait_for_selector("#upload-form")
    page.check("input[name=kind][value=binary]")
    page.select_option("#id_component", label=TA_NAME)
    page.set_input_files("#id_file", str(binary))
    page.fill("#id_version_label", "1.0.0")
    page.fill("#id_sequence_number", "1")
    page.check("input[name=delivery][value=uri]")
    page.check("#id_release")
    page.click("input[name=_upload]")
    page.wait_for_selector(".messagelist .success")
    assert f"SHA-256 {digest}" in page.inner_text(".messagelist")
    page.wait_for_selector(".suit-manifest")
    assert page.inner_text(".suit-sequence-number") == "1"
    screenshot(page, artifacts_dir, "browser-1-upload-result.png")
    version = ComponentVersion.objects.get(component=component)
    assert version.state == ComponentVersion.State.RELEASED

    # A tag, a device group holding the devices with that tag, and its policy.
    page.goto(f"{portal}/admin/devices/tag/add/")
    page.fill("#id_name", FLEET_TAG)
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    page.goto(f"{portal}/admin/policies/devicegroup/add/")
    page.fill("#id_name", "EU fleet")
    page.fill("#id_description", "Devices sold in the EU")
    page.wait_for_selector("#id_tags_from")  # filter_horizontal, drawn by its script
    page.select_option("#id_tags_from", label=FLEET_TAG)
    page.click("#id_tags_add")
    assert page.locator("#id_tags_to option", has_text=FLEET_TAG).count() == 1
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    group = DeviceGroup.objects.get(name="EU fleet")
    assert list(group.tags.values_list("name", flat=True)) == [FLEET_TAG]

    page.goto(f"{portal}/admin/policies/policy/add/")
    page.select_option("#id_group", label="EU fleet")
    page.click(".field-component .select2-selection")  # the component autocomplete
    page.fill(".select2-search__field", "Secure")
    page.click(f".select2-results__option:has-text('{TA_NAME}')")
    page.select_option("#id_effect", "required")
    page.fill("#id_note", "every EU device runs SecureFS")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    row = page.locator("#result_list tbody tr", has_text="EU fleet")
    assert row.count() == 1
    row_text = row.inner_text()
    assert TA_NAME in row_text and "Required" in row_text
    screenshot(page, artifacts_dir, "browser-1-policy-list.png")
    policy = Policy.objects.get()
    assert (policy.group, policy.component, policy.effect, policy.version) == (
        group, component, Effect.REQUIRED, None
    )
    row.locator("th a").first.click()  # the policy's own page
    page.wait_for_selector("#policy_form")
    assert page.locator("#id_effect").input_value() == "required"
    assert page.locator("#id_version").input_value() == ""  # latest released
    screenshot(page, artifacts_dir, "browser-1-policy-page.png")

    # Three agents with that tag check in over HTTP and install the TA nobody asked them for.
    agents = [
        make_agent(tmp_path / f"agent-{n}", name=f"eu-device-{n}", tags=[FLEET_TAG])
        for n in range(1, FLEET_SIZE + 1)
    ]
    for agent in agents:
        result = check_in(agent, tam_uri)
        assert ("query-response", "update") in result.messages
        assert [c.sequence_number for c in agent.installed_components()] == [1]
    assert InstalledComponent.objects.filter(version=version).count() == FLEET_SIZE
    assert DeliveryItem.objects.filter(state=DeliveryItem.State.SUCCEEDED).count() == FLEET_SIZE

    # The operator reloads the device list: three devices, one component each.
    page.goto(f"{portal}/admin/devices/device/")
    rows = page.locator("#result_list tbody tr")
    rows.first.wait_for()
    assert rows.count() == FLEET_SIZE
    for n in range(1, FLEET_SIZE + 1):
        device_row = page.locator("#result_list tbody tr", has_text=f"eu-device-{n}")
        assert device_row.locator("td.field-installed_count").inner_text().strip() == "1"

    # ... and one device's page: installed, delivered, nothing more due.
    page.locator("#result_list tbody tr", has_text="eu-device-2").locator("th a").click()
    page.wait_for_selector(".field-kid")
    assert readonly(page, "kid") == agents[1].kid.hex()
    installed = inline(page, "Installed components")
    assert "SecureFS" in installed.inner_text() and TA_NAME in installed.inner_text()
    assert "1.0.0" in installed.inner_text()
    deliveries = inline(page, "Deliveries")
    delivery_text = deliveries.inner_text()
    assert "Install or update" in delivery_text and "Succeeded" in delivery_text
    due = page.inner_text("table.due-explanation")
    assert "1.0.0" in due and "nothing" in due
    assert "EU fleet" in page.inner_text(".field-due_explanation")
    screenshot(page, artifacts_dir, "browser-1-device-page.png")


def test_security_officer_marks_the_version_compromised_and_watches_it_removed(
    fleet, settings, portal, tam_uri, new_page, security_officer, operator, artifacts_dir
):
    settings.OTP_ENFORCED = True
    version = fleet.version

    # An operator gets no compromise action: no add button, 403 on the page itself.
    op = new_page()
    log_in(op, portal, operator)
    op.goto(f"{portal}/admin/policies/compromiseresponse/")
    op.wait_for_selector("#changelist")
    assert op.locator(".object-tools .addlink").count() == 0
    response = op.goto(f"{portal}/admin/policies/compromiseresponse/add/?version={version.pk}")
    assert response.status == 403
    csrf = next(c["value"] for c in op.context.cookies() if c["name"] == "csrftoken")
    response = op.request.post(  # a forged confirmation, with a valid CSRF token
        f"{portal}/admin/policies/compromiseresponse/add/",
        form={
            "version": str(version.pk),
            "reason": "operator tries",
            "confirm": "True",
            "csrfmiddlewaretoken": csrf,
        },
        headers={"Referer": f"{portal}/admin/"},
    )
    assert response.status == 403 and "CSRF" not in response.text()
    version.refresh_from_db()
    assert version.state == ComponentVersion.State.RELEASED

    # The security officer: password, then a real TOTP code from their authenticator.
    page = new_page()
    log_in(page, portal, security_officer, totp_device=security_officer.totp)
    page.goto(f"{portal}/admin/policies/compromiseresponse/")
    page.click(".object-tools .addlink")
    page.wait_for_selector("#id_version")
    page.select_option("#id_version", str(version.pk))
    page.fill("#id_reason", "Advisory TA-2025-01: SecureFS 1.0.0 leaks its storage key")
    page.click("input[type=submit][value=Continue]")

    # The confirmation page says what will happen before anything does.
    page.wait_for_selector("text=Yes, mark it compromised")
    heading = page.inner_text("#content h2")
    assert heading == f"Mark {version} compromised?"
    content = page.inner_text("#content")
    assert (
        f"{FLEET_SIZE} devices known to hold it will be told to remove it at their next contact"
        in content
    )
    assert "Policy EU fleet" in content and "What each holder gets instead" in content
    # Remove only is the default; no other version exists to offer instead.
    assert page.is_checked("input[name=replacement][value='']")
    assert page.locator("input[name=replacement]").count() == 1
    assert "Advisory TA-2025-01" in content
    screenshot(page, artifacts_dir, "browser-2-compromise-confirmation.png")
    version.refresh_from_db()
    assert version.state == ComponentVersion.State.RELEASED  # not yet

    page.click("input[type=submit][value='Yes, mark it compromised']")
    page.wait_for_selector("table.compromise-progress")
    assert f"removal queued for {FLEET_SIZE} device(s)" in page.inner_text(".messagelist")
    version.refresh_from_db()
    assert version.state == ComponentVersion.State.COMPROMISED
    counts = progress_counts(page)
    assert counts["devices with a removal queued"] == str(FLEET_SIZE)
    assert counts["not yet contacted"] == str(FLEET_SIZE)
    assert counts["removed"] == "0"
    assert counts["fan-out"] == "finished"
    assert "Advisory TA-2025-01" in readonly(page, "reason")
    assert readonly(page, "holders_at_mark") == str(FLEET_SIZE)

    # Each agent checks in and removes it; the officer reloads the progress page after each.
    for removed, agent in enumerate(fleet.agents, start=1):
        result = check_in(agent, tam_uri)
        assert result.removed, result.to_json()
        assert agent.installed_components() == []
        page.reload()
        page.wait_for_selector("table.compromise-progress")
        counts = progress_counts(page)
        assert counts["removed"] == str(removed)
        assert counts["not yet contacted"] == str(FLEET_SIZE - removed)
    assert counts["pending (contacted, removal due or awaiting the answer)"] == "0"
    assert counts["failed"] == "0"
    screenshot(page, artifacts_dir, "browser-2-compromise-progress.png")
    assert not InstalledComponent.objects.filter(version=version).exists()
    response_row = CompromiseResponse.objects.get(version=version)
    assert response_row.marked_by == security_officer
    assert (
        QueuedAction.objects.filter(compromise=response_row, state="succeeded").count()
        == FLEET_SIZE
    )

    # The compromise list says the same at a glance.
    page.goto(f"{portal}/admin/policies/compromiseresponse/")
    row = page.locator("#result_list tbody tr").first
    assert row.locator("td.field-removed").inner_text().strip() == str(FLEET_SIZE)
    assert row.locator("td.field-pending").inner_text().strip() == "0"


# --- journey 3 ------------------------------------------------------------------------------

WALLET_ID = [b"TEEP-Device", b"Wallet", bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0"), b"ta"]
DIAGNOSTICS_ID = [b"TEEP-Device", b"Diagnostics", b"\x01" * 16, b"ta"]


@pytest.fixture
def device_with_history(fleet, tam_uri, tmp_path, operator):
    """One more device of the EU fleet, whose group now requires attestation: it attests,
    installs SecureFS, fails to install the Wallet TA it asked for (a SUIT report with the
    reason), and has an install of the Diagnostics TA queued by an operator, not yet sent."""
    from apps.agent.agent import Behaviour
    from apps.agent.attestation import EatEvidenceProvider, load_or_create_attester, ueid_for
    from apps.attestation import services as attestation
    from apps.components import services as catalogue
    from apps.policies import services as policies
    from apps.teep.wire.component_ids import component_id_key

    wallet = catalogue.create_component(name="Wallet TA", component_id=WALLET_ID, actor=operator)
    catalogue.upload_binary(
        component=wallet,
        binary_file=ContentFile(b"wallet 2.1", name="wallet.ta"),
        version_label="2.1",
        sequence_number=21,
        actor=operator,
        release=True,
    )
    fleet.group.require_attestation = True
    fleet.group.save(update_fields=["require_attestation"])

    state = tmp_path / "sensor-17"
    attester = load_or_create_attester(state)
    attestation.register_attestation_key(
        public_key_bytes=attester.public_pem(), name="TEE of sensor-17"
    )
    agent = make_agent(
        state,
        name="sensor-17",
        tags=[FLEET_TAG],
        evidence_provider=EatEvidenceProvider(attester_key=attester, ueid=ueid_for(attester)),
        behaviour=Behaviour(fail_install_of=frozenset({component_id_key(WALLET_ID)})),
    )
    first = check_in(agent, tam_uri)
    assert ("query-response", "query-request") in first.messages  # challenged: attests
    assert [c.sequence_number for c in agent.installed_components()] == [1]

    agent.request_ta(WALLET_ID)
    second = check_in(agent, tam_uri)
    assert second.failures and ("query-response", "update") in second.messages

    diagnostics = catalogue.create_component(
        name="Diagnostics TA", component_id=DIAGNOSTICS_ID, actor=operator
    )
    catalogue.upload_binary(
        component=diagnostics,
        binary_file=ContentFile(b"diagnostics 0.9", name="diag.ta"),
        version_label="0.9",
        sequence_number=9,
        actor=operator,
        release=True,
    )
    device = Device.objects.get(kid=agent.kid.hex())
    queued = policies.queue_action(
        actor=operator,
        component=diagnostics,
        kind=QueuedAction.Kind.INSTALL,
        device=device,
        reason="support ticket 4411: collect logs",
    )
    assert queued == 1
    return device, agent


def test_viewer_reads_one_devices_history(
    device_with_history, portal, new_page, viewer, artifacts_dir
):
    device, agent = device_with_history
    page = new_page()
    log_in(page, portal, viewer)
    page.goto(f"{portal}/admin/devices/device/")
    page.locator("#result_list tbody tr", has_text="sensor-17").locator("th a").click()
    page.wait_for_selector(".field-kid")
    assert page.locator("input[name=_save]").count() == 0  # a viewer reads, never edits

    # Identity and keys.
    assert readonly(page, "name") == "sensor-17"
    assert FLEET_TAG in readonly(page, "tags")
    assert readonly(page, "kid") == agent.kid.hex()
    assert readonly(page, "ueid") == device.ueid and device.ueid
    # The signing algorithm by name, as the COSE registry spells it, not a bare number.
    assert re.fullmatch(r"(ESP256|Ed25519|ES256|EdDSA) \(-\d+\)", readonly(page, "signing_alg_label"))
    assert "unanswered" in readonly(page, "outstanding_tokens")

    # Attestation history: the appraisal at first contact.
    history = page.locator("table.attestation-history")
    history.wait_for()
    assert history.locator("tbody tr").count() >= 1
    assert "affirming" in history.inner_text().lower()

    # Installed components, the queued removal, deliveries.
    installed = inline(page, "Installed components").inner_text()
    assert "SecureFS" in installed and "1.0.0" in installed and "Wallet" not in installed
    queued = inline(page, "Queued actions").inner_text()
    assert "Install" in queued and "Diagnostics TA" in queued and "Queued" in queued
    assert "ticket 4411" in queued
    deliveries = inline(page, "Deliveries").inner_text()
    assert "Succeeded" in deliveries and "Failed" in deliveries

    # What is due at the next contact, and why: one row per component.
    due = {
        row[0]: row[1:]
        for row in page.eval_on_selector_all(
            "table.due-explanation tbody tr",
            "rows => rows.map(r => Array.from(r.cells, c => c.innerText.trim()))",
        )
    }
    assert due[TA_NAME][:2] == ["1.0.0", "nothing"]
    assert due["Wallet TA"][1:3] == ["install", "2.1"] and "requested" in due["Wallet TA"][3]
    assert due["Diagnostics TA"][1:3] == ["install", "0.9"]

    # SUIT reports as one readable line each: a success and the failing install's reason.
    reports = inline(page, "SUIT reports").inner_text()
    assert re.search(r"success", reports)
    failed = SuitReport.objects.filter(device=device, success=False).get()
    assert failed.summary and failed.summary in reports
    assert "operation-failed" in failed.summary or "failed" in failed.summary.lower()

    # The exchange timeline: every message in and out, newest first.
    timeline = page.locator("table.exchange-timeline")
    assert timeline.locator("tbody tr").count() >= 4
    timeline_text = timeline.inner_text()
    assert "query-response → update" in timeline_text
    assert "success" in timeline_text and "error" in timeline_text
    screenshot(page, artifacts_dir, "browser-3-device-history.png")


# --- journey 4: a release and its rollout -----------------------------------------------------


def legend(page, scope="") -> dict[str, tuple[str, str]]:
    """A progress bar's legend as {label: (count, href)}."""
    return {
        row[0]: (row[1], row[2])
        for row in page.eval_on_selector_all(
            f"{scope} ul.progress-legend li",
            "items => items.map(li => [li.querySelector('a').innerText.trim(),"
            " li.querySelector('.count').innerText.trim(), li.querySelector('a').href])",
        )
    }


def device_names_listed(page) -> set[str]:
    return {
        text.strip()
        for text in page.eval_on_selector_all(
            "#result_list tbody th a", "links => links.map(a => a.innerText)"
        )
    }


def test_operator_releases_a_version_and_follows_its_rollout_to_the_devices(
    fleet, portal, tam_uri, tmp_path, new_page, operator, artifacts_dir
):
    from apps.agent.agent import Behaviour
    from apps.components import services as catalogue
    from apps.teep.wire.component_ids import component_id_key

    from .conftest import TA_COMPONENT_ID

    draft = catalogue.upload_binary(
        component=fleet.component,
        binary_file=ContentFile(b"Hello again, Secure World!", name="secure-fs-1.1.ta"),
        version_label="1.1.0",
        sequence_number=2,
        actor=operator,
    )
    page = new_page()
    log_in(page, portal, operator)

    # The version page has a Release button; it asks before it releases.
    page.goto(f"{portal}/admin/components/componentversion/{draft.pk}/change/")
    assert "Draft" in page.inner_text(".field-state_badge .badge")
    page.click("text=Release this version…")
    page.wait_for_selector("text=Yes, release it")
    page.fill("#id_reason", "QA passed on the EU reference board")
    screenshot(page, artifacts_dir, "browser-4-release-confirmation.png")
    page.click("input[type=submit][value='Yes, release it']")
    page.wait_for_selector(".messagelist .success")
    assert "Released" in page.inner_text(".field-state_badge .badge")
    draft.refresh_from_db()
    assert draft.state == ComponentVersion.State.RELEASED

    # Two devices check in: one installs 1.1.0; a fourth one, new, fails to.
    check_in(fleet.agents[0], tam_uri)
    broken = make_agent(
        tmp_path / "agent-4", name="eu-device-4", tags=[FLEET_TAG],
        behaviour=Behaviour(fail_install_of=frozenset({component_id_key(TA_COMPONENT_ID)})),
    )
    failed_check = check_in(broken, tam_uri)
    assert failed_check.failures

    # The rollouts page: the EU fleet's policy toward 1.1.0, a bar and a count per state.
    page.goto(f"{portal}/admin/policies/policy/")
    page.click("text=Rollout progress")
    page.wait_for_selector(".rollouts .progress")
    assert "EU fleet: SecureFS TA 1.1.0" in page.inner_text(".rollouts")
    assert page.inner_text(".progress-summary") == "1 of 4 devices installed (25 %)"
    counts = legend(page, ".rollouts")
    assert counts["installed"][0] == "1"
    assert counts["failed"][0] == "1"
    assert counts["not contacted yet"][0] == "2"
    assert counts["pending (delivered, not confirmed)"][0] == "0"
    screenshot(page, artifacts_dir, "browser-4-rollout-progress.png")

    # Each count is a link to exactly those devices.
    page.goto(counts["not contacted yet"][1])
    page.wait_for_selector("#result_list")
    assert device_names_listed(page) == {"eu-device-2", "eu-device-3"}
    page.goto(counts["failed"][1])
    page.wait_for_selector("#result_list")
    assert device_names_listed(page) == {"eu-device-4"}
    screenshot(page, artifacts_dir, "browser-4-rollout-failed-devices.png")

    # The failed device's page says why.
    page.click("#result_list >> text=eu-device-4")
    page.wait_for_selector(".field-kid")
    deliveries = inline(page, "Deliveries").inner_text()
    assert "Failed" in deliveries and "1.1.0" in deliveries


# --- journey 5: compromise drill-down --------------------------------------------------------


def test_security_officer_drills_a_compromise_down_to_its_devices_and_exports_them(
    fleet, settings, portal, tam_uri, new_page, security_officer, artifacts_dir
):
    import csv
    import io

    from apps.policies import services as policies

    settings.OTP_ENFORCED = True
    response = policies.mark_compromised(
        fleet.version, actor=security_officer, reason="Advisory TA-2025-01"
    )
    assert QueuedAction.objects.filter(compromise=response).count() == FLEET_SIZE
    removed = fleet.agents[0]
    assert check_in(removed, tam_uri).removed

    page = new_page()
    log_in(page, portal, security_officer, totp_device=security_officer.totp)

    # The dashboard keeps the response (fan-out finished) with its bar.
    page.goto(f"{portal}/admin/")
    panel = page.locator("#fleet-compromises")
    panel.wait_for()
    assert str(fleet.version) in panel.inner_text()
    assert "1 of 3 devices removed (33 %)" in panel.inner_text()

    # The response's own page: a bar, a link per state, the drill-down and the export.
    page.click(f"#fleet-compromises h3 a:has-text('{fleet.version}')")
    page.wait_for_selector("table.compromise-progress")
    assert "reloads every 30 s" in page.inner_text("#content")
    counts = legend(page, ".field-progress")
    assert counts["removed"][0] == "1" and counts["not contacted yet"][0] == "2"
    screenshot(page, artifacts_dir, "browser-5-compromise-progress.png")

    page.goto(counts["not contacted yet"][1])
    page.wait_for_selector("#result_list")
    listed = {
        t.strip() for t in page.eval_on_selector_all(
            "#result_list tbody td.field-device_link a", "links => links.map(a => a.innerText)")
    }
    assert listed == {"eu-device-2", "eu-device-3"}
    assert page.locator("#result_list .badge-info", has_text="Queued").count() == 2
    screenshot(page, artifacts_dir, "browser-5-compromise-drill-down.png")

    # From a device of the list to its page.
    page.click("#result_list td.field-device_link a:has-text('eu-device-2')")
    page.wait_for_selector(".field-kid")
    assert page.input_value("#id_name") == "eu-device-2"

    # The CSV of every device and its removal.
    page.goto(f"{portal}/admin/policies/compromiseresponse/{response.pk}/change/")
    with page.expect_download() as download:
        page.click("text=Export them as CSV")
    rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    assert {r["device"]: r["progress"] for r in rows} == {
        "eu-device-1": "removed", "eu-device-2": "not contacted yet", "eu-device-3": "not contacted yet",
    }


# --- journey 6: retiring a device -----------------------------------------------------------------


def test_operator_retires_a_device_that_then_leaves_the_rollout(
    fleet, portal, tam_uri, new_page, operator, artifacts_dir
):
    page = new_page()
    log_in(page, portal, operator)
    retiring = fleet.agents[2]
    device = Device.objects.get(kid=retiring.kid.hex())

    page.goto(f"{portal}/admin/policies/policy/{fleet.policy.pk}/change/")
    page.wait_for_selector(".field-rollout .progress")
    assert page.inner_text(".field-rollout .progress-summary") == "3 of 3 devices installed (100 %)"

    page.goto(f"{portal}/admin/devices/device/{device.pk}/change/")
    assert page.inner_text(".field-state_badge .badge") == "Active"
    page.click("text=Retire this device…")
    page.wait_for_selector("text=Yes, retire")
    assert "eu-device-3" in page.inner_text(".confirmation")
    page.fill("#id_reason", "returned by the customer, screen broken")
    screenshot(page, artifacts_dir, "browser-6-retire-confirmation.png")
    page.click("input[type=submit][value='Yes, retire']")
    page.wait_for_selector(".messagelist .success")
    assert page.inner_text(".field-state_badge .badge") == "Retired"
    assert page.locator("text=Bring back into service…").count() == 1

    # Its next message is dropped, and the trail says why.
    result = retiring.request_policy_check(tam_uri)
    assert result.ok and not result.installed and not result.removed
    page.reload()
    timeline = page.inner_text("table.exchange-timeline")
    assert "device is retired" in timeline and "dropped" in timeline
    assert page.locator("table.exchange-timeline .badge-bad", has_text="dropped").count() >= 1
    # Long key ids and digests wrap: the page is never wider than the window.
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    screenshot(page, artifacts_dir, "browser-6-retired-device.png")

    # It no longer counts in the rollout, nor among the devices in service.
    page.goto(f"{portal}/admin/policies/policy/{fleet.policy.pk}/change/")
    assert page.inner_text(".field-rollout .progress-summary") == "2 of 2 devices installed (100 %)"
    from apps.audit.models import AuditEvent

    retire = AuditEvent.objects.get(action="device.retire")
    assert retire.actor == operator and retire.reason == "returned by the customer, screen broken"


# --- journey 7: the auditor -----------------------------------------------------------------------


def test_auditor_goes_from_a_device_to_its_history_by_name(
    fleet, portal, tam_uri, new_page, viewer, artifacts_dir
):
    import csv
    import io

    page = new_page()
    log_in(page, portal, viewer)
    device = Device.objects.get(name="eu-device-1")
    page.goto(f"{portal}/admin/devices/device/{device.pk}/change/")
    page.click(".object-tools >> text=Full exchange history")
    page.wait_for_selector("#result_list")
    assert device.kid in page.url
    rows = page.locator("#result_list tbody tr")
    assert rows.count() >= 3  # connect, query-response -> update, success; its registration
    listing = page.inner_text("#result_list")
    assert "eu-device-1" in listing and "eu-device-2" not in listing
    assert "install SecureFS TA 1.0.0" in listing  # names, not CBOR hex
    assert fleet.component.component_id not in page.content()
    screenshot(page, artifacts_dir, "browser-7-device-history.png")

    # The filter takes a device's name, and says when none matched.
    page.goto(f"{portal}/admin/audit/auditevent/")
    page.fill("details.input-filter input[name=device]", "eu-device-2")
    page.press("details.input-filter input[name=device]", "Enter")
    page.wait_for_url("**device=eu-device-2**")
    assert "eu-device-2" in page.inner_text("#result_list")
    assert "eu-device-1" not in page.inner_text("#result_list")
    page.fill("details.input-filter input[name=device]", "eu-device-99")
    page.press("details.input-filter input[name=device]", "Enter")
    page.wait_for_url("**device=eu-device-99**")
    assert "no device named 'eu-device-99'" in page.inner_text("#content")
    screenshot(page, artifacts_dir, "browser-7-unknown-device-name.png")

    # The export of one device's history names its components.
    page.goto(f"{portal}/admin/audit/auditevent/?device=eu-device-1")
    with page.expect_download() as download:
        page.click("text=Export CSV")
    exported = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    assert {r["device"] for r in exported} == {"eu-device-1"}
    assert any("SecureFS TA 1.0.0" in r["detail"] for r in exported)
    assert not any(fleet.component.component_id in r["detail"] for r in exported)


# --- the dashboard on a laptop and a phone --------------------------------------------------------


@pytest.mark.parametrize(
    "width, height, name", [(1280, 800, "laptop"), (390, 844, "phone")], ids=["1280px", "phone"]
)
def test_the_dashboard_fits_the_window_without_sideways_scrolling(
    fleet, portal, new_page, viewer, artifacts_dir, width, height, name
):
    # A failed delivery whose reason is one long word (a URI), as the TAM records them.
    DeliveryItem.objects.create(
        device=Device.objects.get(name="eu-device-1"), kind="install", state="failed",
        component_key=fleet.component.component_id, version=fleet.version,
        reason="ERR_MANIFEST_PROCESSING_FAILED: " + "https://tam.example/payloads/" + "a" * 230,
    )
    page = new_page(width, height, is_mobile=name == "phone")
    log_in(page, portal, viewer)
    page.goto(f"{portal}/admin/")
    page.wait_for_selector("#fleet-failed-deliveries")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a {width}px window"
    for panel in ("#fleet-failed-deliveries", "#fleet-compromises", "#fleet-rollouts", "#fleet-states"):
        box = page.locator(panel).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, panel
    assert page.locator('meta[http-equiv="refresh"]').count() == 1
    assert "This page reloads every 60 s" in page.inner_text(".fleet-dashboard .generated")
    screenshot(page, artifacts_dir, f"browser-8-dashboard-{name}.png")
