"""Shared pieces of the portal journeys in a real headless Chromium.

Each journey starts from an empty database (live_server needs transactional tests), so the
state a journey builds on (a fleet holding a TA, a device with a history) is made here through
the product's services and the product's TEEP Agent over HTTP; the journey itself is then
driven through the browser.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The TC of TEEP Appendix E, its binary, and the tag of the journeys' fleet.
TA_COMPONENT_ID = [
    b"TEEP-Device",
    b"SecureFS",
    bytes.fromhex("8d82573a926d4754935332dc29997f74"),
    b"ta",
]
TA_NAME = "SecureFS TA"
TA_BINARY = b"Hello, Secure World!"
FLEET_TAG = "fleet-eu"
FLEET_SIZE = 3


@pytest.fixture(autouse=True)
def _async_unsafe_allowed(monkeypatch):
    """Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls
    from a thread with a running loop unless told it is safe (it is: nothing here is async).
    Restored after each test, never leaked into the rest of the run."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _fresh_login_state():
    """Login attempts (django-axes) and OTP throttling live partly in the per-process cache."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Uploads go to this test's own folder."""
    root = tmp_path / "media"
    root.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


@pytest.fixture
def portal(live_server, settings):
    """The live portal; payload URIs in manifests point at it."""
    settings.TAM_PUBLIC_BASE_URL = live_server.url
    return live_server.url


@pytest.fixture
def tam_uri(portal):
    return f"{portal}/tam"


@pytest.fixture(scope="session", autouse=True)
def chromium_path() -> str:
    """Checked first, so a missing Chromium skips (or, in CI, fails) before any set-up."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests but {CHROMIUM} is missing")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    return CHROMIUM


@pytest.fixture
def chromium(chromium_path, _async_unsafe_allowed):
    """A headless Chromium for one test; each user of a journey gets a context of it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(chromium):
    """new_page() -> a page in a fresh browser context (its own cookies: one user each);
    new_page(width, height, ...) for another window size (a laptop, a phone)."""
    contexts = []

    def make(width=1400, height=1000, **options):
        context = chromium.new_context(viewport={"width": width, "height": height}, **options)
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


# --- people ---------------------------------------------------------------------------------


@pytest.fixture
def operator(db):
    from apps.accounts import roles
    from tests.accounts.helpers import make_user

    return make_user(roles.OPERATOR, username="olivia-operator")


@pytest.fixture
def security_officer(db):
    from apps.accounts import roles
    from tests.accounts.helpers import confirmed_totp_device, make_user

    user = make_user(roles.SECURITY_OFFICER, username="sam-security")
    user.totp = confirmed_totp_device(user)
    return user


@pytest.fixture
def viewer(db):
    from apps.accounts import roles
    from tests.accounts.helpers import make_user

    return make_user(roles.VIEWER, username="victor-viewer")


def log_in(page, base_url: str, user, *, totp_device=None):
    """The admin login form; with a TOTP device, the second-factor page with a real code."""
    from tests.accounts.helpers import PASSWORD, current_code

    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    if totp_device is not None:
        page.wait_for_url("**/accounts/otp/verify/**")
        page.fill("input[name=token]", current_code(totp_device))
        page.click("input[type=submit][value=Verify]")
        page.wait_for_url(lambda url: "/accounts/otp/" not in url)
    page.wait_for_selector("#user-tools")
    assert "/accounts/otp/" not in page.url and "/login/" not in page.url, page.url


def screenshot(page, artifacts_dir: Path, name: str) -> Path:
    path = artifacts_dir / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


# --- agents ---------------------------------------------------------------------------------


def make_agent(state_dir: Path, *, name: str, tags=(), register=True, **kwargs):
    """The product's TEEP Agent trusting this TAM's keys (and registered, unless told not)."""
    from apps.agent.agent import TeepAgent
    from apps.devices.services import register_agent
    from apps.teep.tam_keys import tam_keys

    agent = TeepAgent(state_dir, **kwargs)
    for key in tam_keys().public_keys:
        agent.add_tam_key(key)
    if register:
        register_agent(
            public_key_bytes=agent.public_key_path.read_bytes(), name=name, tags=list(tags)
        )
    return agent


def check_in(agent, tam_uri: str):
    """RequestPolicyCheck over HTTP; fails the test with the agent's own account if not ok."""
    result = agent.request_policy_check(tam_uri)
    assert result.ok, result.to_json()
    return result


@dataclass
class Fleet:
    component: object
    version: object
    group: object
    policy: object
    agents: list = field(default_factory=list)

    @property
    def kids(self) -> list[str]:
        return [a.kid.hex() for a in self.agents]


@pytest.fixture
def fleet(tam_uri, tmp_path, operator) -> Fleet:
    """What journey 1 builds by hand, built by services: SecureFS TA 1.0.0 released, group
    "EU fleet" (tag fleet-eu) requiring its latest released version, and three agents with
    that tag that have checked in and installed it."""
    from apps.components import services as catalogue
    from apps.devices.models import InstalledComponent, Tag
    from apps.policies.models import DeviceGroup, Effect, Policy

    component = catalogue.create_component(
        name=TA_NAME, component_id=TA_COMPONENT_ID, actor=operator
    )
    version = catalogue.upload_binary(
        component=component,
        binary_file=ContentFile(TA_BINARY, name="secure-fs.ta"),
        version_label="1.0.0",
        sequence_number=1,
        actor=operator,
        release=True,
    )
    group = DeviceGroup.objects.create(name="EU fleet", created_by=operator)
    group.tags.add(Tag.objects.create(name=FLEET_TAG))
    policy = Policy.objects.create(
        group=group, component=component, effect=Effect.REQUIRED, created_by=operator
    )
    agents = [
        make_agent(tmp_path / f"agent-{n}", name=f"eu-device-{n}", tags=[FLEET_TAG])
        for n in range(1, FLEET_SIZE + 1)
    ]
    for agent in agents:
        check_in(agent, tam_uri)
        assert len(agent.installed_components()) == 1
    assert InstalledComponent.objects.filter(version=version).count() == FLEET_SIZE
    return Fleet(component, version, group, policy, agents)
