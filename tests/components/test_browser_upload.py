"""An operator uploads a TA binary in a real headless Chromium and reads its decoded manifest."""

import hashlib
import os
from pathlib import Path

import pytest

from apps.components.models import ComponentVersion
from tests.components.conftest import EXAMPLE_PAYLOAD
from tests.components.factories import PASSWORD

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests but {CHROMIUM} is missing")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def test_operator_uploads_a_ta_binary_and_reads_its_manifest(
    browser_page, live_server, operator, example_component, artifacts_dir, tmp_path
):
    page = browser_page
    binary = tmp_path / "secure-fs.ta"
    binary.write_bytes(EXAMPLE_PAYLOAD)
    digest = hashlib.sha256(EXAMPLE_PAYLOAD).hexdigest()

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    page.goto(f"{live_server.url}/admin/components/componentversion/")
    page.click("text=Upload a TA binary or signed envelope")
    page.wait_for_selector("#upload-form")
    page.check("input[name=kind][value=binary]")
    page.select_option("#id_component", label=example_component.name)
    page.set_input_files("#id_file", str(binary))
    page.fill("#id_version_label", "1.0.0")
    page.fill("#id_sequence_number", "7")
    page.check("input[name=delivery][value=uri]")
    page.check("#id_release")
    page.click("input[name=_upload]")

    # The new version's page, with the success message and the decoded manifest.
    page.wait_for_selector(".messagelist .success")
    assert f"SHA-256 {digest}" in page.inner_text(".messagelist")
    version = ComponentVersion.objects.get()
    assert version.sequence_number == 7 and version.state == ComponentVersion.State.RELEASED

    page.goto(f"{live_server.url}/admin/components/componentversion/")
    row = page.locator("#result_list tbody tr", has_text="1.0.0")
    assert row.count() == 1
    row_text = row.inner_text()
    assert digest[:16] in row_text and "7" in row_text and "Released" in row_text

    row.locator("th a, td a").first.click()
    page.wait_for_selector(".suit-manifest")
    assert page.inner_text(".suit-sequence-number") == "7"
    assert (
        "'TEEP-Device', 'SecureFS', h'8d82573a926d4754935332dc29997f74', 'ta'"
        in page.inner_text(".suit-component-id")
    )
    manifest_text = page.inner_text(".suit-tree")
    assert (
        "directive-fetch" in manifest_text and f"/payloads/{digest}/secure-fs.ta" in manifest_text
    )
    page.screenshot(path=str(artifacts_dir / "components-decoded-manifest.png"), full_page=True)

    # The payload URI in the manifest answers with the binary (path on the live server).
    response = page.request.get(f"{live_server.url}/payloads/{digest}/secure-fs.ta")
    assert response.status == 200 and response.body() == EXAMPLE_PAYLOAD
    assert response.headers["etag"] == f'"{digest}"'
