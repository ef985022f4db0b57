"""The portal's Content-Security-Policy breaks nothing people use: in a real Chromium the
admin's own JavaScript runs (the changelist's select-all checkbox), the dashboard's charts,
the TOTP QR code and the Swagger UI render, and the browser reports no violation."""

import pytest
from django.core.files.base import ContentFile

from apps.components import services as catalogue

from .conftest import TA_COMPONENT_ID, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Collects what the browser blocks (added by the devtools protocol, so CSP does not apply).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
    e => window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


def open_page(new_page):
    page = new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    return page


def visit(page, url):
    response = page.goto(url)
    assert response.status == 200, url
    assert "script-src 'self'" in response.headers["content-security-policy"]
    return response


def violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations")


def test_admin_javascript_runs_under_the_policy(portal, new_page, operator, artifacts_dir):
    component = catalogue.create_component(name="csp-ta", component_id=TA_COMPONENT_ID,
                                           actor=operator)
    for n in (1, 2):
        catalogue.upload_binary(component=component, binary_file=ContentFile(b"TA %d" % n,
                                name="csp.ta"), version_label=f"0.{n}", sequence_number=n,
                                actor=operator, release=False)
    page = open_page(new_page)
    log_in(page, portal, operator)
    assert violations(page) == []

    visit(page, f"{portal}/admin/")  # the dashboard's inline SVG charts
    assert page.locator("svg").count() > 0
    assert violations(page) == []

    visit(page, f"{portal}/admin/components/componentversion/")
    page.check("#action-toggle")  # admin/js/actions.js selects every row and counts them
    assert page.locator("input.action-select:checked").count() == 2
    assert "2 of 2 selected" in page.inner_text(".action-counter")
    screenshot(page, artifacts_dir, "browser-csp-changelist.png")
    assert violations(page) == []


def test_the_totp_qr_page_and_the_api_docs_render_under_the_policy(
    portal, new_page, operator, artifacts_dir
):
    page = open_page(new_page)
    log_in(page, portal, operator)

    visit(page, f"{portal}/accounts/otp/enrol/")
    assert page.locator(".otp-qr svg").is_visible()
    assert violations(page) == []

    visit(page, f"{portal}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "tam-portal management API" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-tag")  # the schema was fetched and drawn
    screenshot(page, artifacts_dir, "browser-csp-api-docs.png")
    assert violations(page) == []
