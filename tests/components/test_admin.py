"""The catalogue admin: one upload form, inline errors, decoded manifests, actions."""

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.components import services
from apps.components.models import ComponentVersion, TCSigner, TrustedComponent
from tests.components.conftest import EXAMPLE_PAYLOAD, stored_files
from tests.components.factories import EXAMPLE_COMPONENT_ID, UserFactory

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/admin/components/componentversion/upload/"
CHANGELIST_URL = "/admin/components/componentversion/"


@pytest.fixture
def admin_client(client, operator):
    client.force_login(operator)
    return client


def binary_upload(component, sequence_number, **extra):
    return {
        "kind": "binary",
        "component": component.pk,
        "file": SimpleUploadedFile("secure-fs.ta", EXAMPLE_PAYLOAD),
        "version_label": "1.0",
        "sequence_number": sequence_number,
        "delivery": "uri",
        **extra,
    }


def envelope_upload(component, data: bytes, **extra):
    return {
        "kind": "envelope",
        "component": component.pk,
        "file": SimpleUploadedFile("manifest.suit", data),
        "delivery": "uri",
        **extra,
    }


# --- who may use it ---------------------------------------------------------------------------


def test_anonymous_is_sent_to_the_login_page(client):
    response = client.get(UPLOAD_URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_add_permission_cannot_upload(client):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_componentversion"))
    client.force_login(user)
    assert client.get(UPLOAD_URL).status_code == 403
    assert client.get(CHANGELIST_URL).status_code == 200


def test_staff_with_add_permission_can_upload(client, example_component):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_componentversion", "view_componentversion"])
    )
    client.force_login(user)
    response = client.post(UPLOAD_URL, binary_upload(example_component, 1))
    assert response.status_code == 302
    assert ComponentVersion.objects.get().created_by == user


# --- the upload form --------------------------------------------------------------------------


def test_changelist_links_to_the_upload_form(admin_client):
    response = admin_client.get(CHANGELIST_URL)
    assert UPLOAD_URL.encode() in response.content
    assert admin_client.get("/admin/components/componentversion/add/")["Location"] == UPLOAD_URL


def test_upload_form_offers_both_kinds(admin_client, example_component):
    response = admin_client.get(UPLOAD_URL)
    assert response.status_code == 200
    assert b"A TA binary: the TAM builds the SUIT manifest and signs it" in response.content
    assert b"A SUIT envelope signed by a TC signer: the TAM verifies it" in response.content


def test_uploading_a_binary_opens_its_version(admin_client, example_component):
    response = admin_client.post(UPLOAD_URL, binary_upload(example_component, 4, release="on"))
    version = ComponentVersion.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:components_componentversion_change", args=[version.pk]
    )
    assert version.sequence_number == 4 and version.state == "released"
    assert version.binary_filename == "secure-fs.ta"
    page = admin_client.get(response["Location"])
    assert f"SHA-256 {version.binary_sha256}".encode() in page.content  # the success message


def test_uploading_a_signed_envelope_hex_file(admin_client, example_signer, vectors_dir):
    data = (vectors_dir / "teep/suit_uri.hex").read_bytes()  # the form also takes hex
    response = admin_client.post(UPLOAD_URL, envelope_upload(example_signer.components.get(), data))
    assert response.status_code == 302
    version = ComponentVersion.objects.get()
    assert version.sequence_number == 3 and version.signer == example_signer


def test_wrong_key_is_shown_inline_and_nothing_is_created(
    admin_client, operator, example_component, read_vector
):
    services.register_signer(
        name="Other",
        public_key_bytes=read_vector("keys/receiver-kek-kid-2.public.pem"),
        components=[example_component],
        actor=operator,
    )
    response = admin_client.post(
        UPLOAD_URL, envelope_upload(example_component, read_vector("teep/suit_uri.hex"))
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "signature does not verify" in errors["file"][0]
    assert b"signature does not verify" in response.content
    assert not ComponentVersion.objects.exists()


def test_garbage_envelope_shows_the_parsers_message(admin_client, example_signer):
    response = admin_client.post(
        UPLOAD_URL, envelope_upload(example_signer.components.get(), b"\x01\x02\x03")
    )
    assert response.status_code == 200
    assert "not a SUIT envelope" in response.context["form"].errors["file"][0]


def test_sequence_number_conflict_is_shown_inline(admin_client, example_component, media_root):
    admin_client.post(UPLOAD_URL, binary_upload(example_component, 5, release="on"))
    files = stored_files(media_root)
    response = admin_client.post(UPLOAD_URL, binary_upload(example_component, 5))
    assert response.status_code == 200
    assert "sequence number 5" in response.context["form"].errors["sequence_number"][0]
    response = admin_client.post(UPLOAD_URL, binary_upload(example_component, 2))
    assert "would roll" in response.context["form"].errors["sequence_number"][0]
    assert ComponentVersion.objects.count() == 1
    assert stored_files(media_root) == files


def test_binary_needs_a_sequence_number(admin_client, example_component):
    data = binary_upload(example_component, 1)
    del data["sequence_number"]
    response = admin_client.post(UPLOAD_URL, data)
    assert "needs the sequence number" in response.context["form"].errors["sequence_number"][0]


# --- the version page -------------------------------------------------------------------------


@pytest.fixture
def signed_version(operator, example_signer, read_vector):
    return services.upload_signed_envelope(
        component=example_signer.components.get(),
        envelope_bytes=read_vector("teep/suit_uri.hex"),
        version_label="1.0",
        actor=operator,
    )


def test_version_page_shows_the_decoded_manifest(admin_client, signed_version):
    response = admin_client.get(
        reverse("admin:components_componentversion_change", args=[signed_version.pk])
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        "&#x27;TEEP-Device&#x27;, &#x27;SecureFS&#x27;, "
        "h&#x27;8d82573a926d4754935332dc29997f74&#x27;, &#x27;ta&#x27;" in html
    )
    assert '<td class="suit-sequence-number">3</td>' in html
    assert (
        "directive-fetch" in html and "condition-image-match" in html and "directive-unlink" in html
    )
    assert "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta" in html
    assert "ESP256" in html
    assert 'name="_save"' not in html  # nothing on the page is editable


def test_envelope_download_gives_the_stored_bytes(admin_client, signed_version, read_vector):
    response = admin_client.get(
        reverse("admin:components_componentversion_envelope", args=[signed_version.pk])
    )
    assert response.status_code == 200
    assert response.content == read_vector("teep/suit_uri.hex")
    assert response["Content-Type"] == "application/suit-envelope+cose"
    assert response["Content-Disposition"] == 'attachment; filename="SecureFS-TA-3.suit"'


def test_envelope_download_needs_login(client, signed_version):
    response = client.get(
        reverse("admin:components_componentversion_envelope", args=[signed_version.pk])
    )
    assert response.status_code == 302


def test_component_page_lists_its_versions(admin_client, signed_version):
    response = admin_client.get(
        reverse("admin:components_trustedcomponent_change", args=[signed_version.component_id])
    )
    html = response.content.decode()
    assert "8cf71ac86af31be1…" in html  # digest in the version history inline
    assert "Example TC signer" in html


# --- actions ----------------------------------------------------------------------------------


def test_release_action(admin_client, operator, example_component):
    version = services.upload_binary(
        component=example_component,
        binary_file=SimpleUploadedFile("a.ta", b"x"),
        version_label="1",
        sequence_number=1,
        actor=operator,
    )
    response = admin_client.post(
        CHANGELIST_URL,
        {"action": "release_selected", "_selected_action": [version.pk]},
        follow=True,
    )
    version.refresh_from_db()
    assert version.state == "released"
    assert "Released" in response.content.decode()


def test_release_action_reports_a_rollback(admin_client, operator, example_component):
    old = services.upload_binary(
        component=example_component,
        binary_file=SimpleUploadedFile("a.ta", b"x"),
        version_label="1",
        sequence_number=1,
        actor=operator,
    )
    services.upload_binary(
        component=example_component,
        binary_file=SimpleUploadedFile("b.ta", b"y"),
        version_label="2",
        sequence_number=2,
        actor=operator,
        release=True,
    )
    response = admin_client.post(
        CHANGELIST_URL, {"action": "release_selected", "_selected_action": [old.pk]}, follow=True
    )
    assert "would roll" in response.content.decode()
    old.refresh_from_db()
    assert old.state == "draft"


def test_withdraw_action_asks_for_a_reason_first(admin_client, operator, example_component):
    version = services.upload_binary(
        component=example_component,
        binary_file=SimpleUploadedFile("a.ta", b"x"),
        version_label="1",
        sequence_number=1,
        actor=operator,
        release=True,
    )
    response = admin_client.post(
        CHANGELIST_URL, {"action": "withdraw_selected", "_selected_action": [version.pk]}
    )
    assert response.status_code == 200 and b"Yes, withdraw" in response.content
    version.refresh_from_db()
    assert version.state == "released"
    response = admin_client.post(
        CHANGELIST_URL,
        {
            "action": "withdraw_selected",
            "_selected_action": [version.pk],
            "confirm": "yes",
            "reason": "crashes",
        },
        follow=True,
    )
    version.refresh_from_db()
    assert version.state == "withdrawn" and version.state_changed_reason == "crashes"
    assert AuditEvent.objects.get(action="component_version.withdraw").reason == "crashes"


# --- components and signers -------------------------------------------------------------------


def test_adding_a_component_in_the_admin_goes_through_the_service(admin_client, operator):
    response = admin_client.post(
        "/admin/components/trustedcomponent/add/",
        {
            "name": "SecureFS TA",
            "vendor": "Example",
            "component_id_text": (
                "['TEEP-Device', 'SecureFS', h'8D82573A926D4754935332DC29997F74', 'ta']"
            ),
            "manifest_component_id_text": "",
            "description": "",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    component = TrustedComponent.objects.get()
    assert component.component_id_elements == EXAMPLE_COMPONENT_ID
    assert component.manifest_component_id_elements[-1] == b"suit"
    assert AuditEvent.objects.get(action="component.create").actor == operator


def test_bad_component_id_is_shown_inline(admin_client):
    response = admin_client.post(
        "/admin/components/trustedcomponent/add/",
        {
            "name": "X",
            "component_id_text": "['a', h'abc']",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "odd number of hex digits" in str(
        response.context["adminform"].form.errors["component_id_text"]
    )


def test_registering_a_signer_with_a_pem_file(admin_client, example_component, read_vector):
    response = admin_client.post(
        "/admin/components/tcsigner/add/",
        {
            "name": "Vendor",
            "description": "",
            "components": [example_component.pk],
            "public_key_file": SimpleUploadedFile(
                "signer.pem", read_vector("keys/suit-example-signer.public.pem")
            ),
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    signer = TCSigner.objects.get()
    assert signer.keys.get().kid.startswith("ca9e35f2")
    assert list(signer.components.all()) == [example_component]
    assert AuditEvent.objects.filter(action="signer.register").exists()


def test_signer_without_a_key_is_refused(admin_client):
    response = admin_client.post(
        "/admin/components/tcsigner/add/",
        {
            "name": "Vendor",
            "public_key_text": "",
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert not TCSigner.objects.exists()


def test_editing_a_component_keeps_its_ids_and_is_audited(
    admin_client, example_component, example_signer
):
    url = reverse("admin:components_trustedcomponent_change", args=[example_component.pk])
    page = admin_client.get(url)
    assert b"h&#x27;8d82573a926d4754935332dc29997f74&#x27;, &#x27;suit&#x27;" in page.content
    response = admin_client.post(
        url,
        {
            "name": "SecureFS TA (renamed)",
            "vendor": "Example",
            "description": "",
            "signers": [],
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    example_component.refresh_from_db()
    assert example_component.name == "SecureFS TA (renamed)"
    assert example_component.component_id_elements == EXAMPLE_COMPONENT_ID
    assert not example_component.signers.exists()
    event = AuditEvent.objects.get(action="component.update")
    assert event.detail["before"]["signers"] == ["Example TC signer"]
    assert event.detail["after"]["signers"] == []


def test_adding_a_second_key_to_a_signer(
    admin_client, example_signer, example_component, read_vector
):
    url = reverse("admin:components_tcsigner_change", args=[example_signer.pk])
    response = admin_client.post(
        url,
        {
            "name": example_signer.name,
            "description": "",
            "components": [example_component.pk],
            "public_key_text": read_vector("keys/receiver-kek-kid-2.public.pem").decode(),
            "keys-TOTAL_FORMS": "1",
            "keys-INITIAL_FORMS": "1",
            "keys-0-id": example_signer.keys.get().pk,
            "keys-0-signer": example_signer.pk,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert example_signer.keys.count() == 2
    assert AuditEvent.objects.filter(action="signer.key-add").exists()


def test_released_version_page_links_to_the_compromise_confirmation(admin_client, example_component):
    from django.core.files.base import ContentFile
    from django.urls import reverse

    from apps.components import services

    released_version = services.upload_binary(
        component=example_component, binary_file=ContentFile(b"ta", name="ta.bin"), version_label="1",
        sequence_number=1, actor=None, release=True,
    )
    page = admin_client.get(reverse("admin:components_componentversion_change", args=[released_version.pk]))
    target = reverse("admin:policies_compromiseresponse_add") + f"?version={released_version.pk}"
    assert target in page.content.decode()


# --- Issue 14: a Release button on the version page ---------------------------------------------


def _draft(operator, component, sequence_number=1, label="1"):
    return services.upload_binary(
        component=component,
        binary_file=SimpleUploadedFile("a.ta", b"x" * sequence_number),
        version_label=label,
        sequence_number=sequence_number,
        actor=operator,
    )


def test_a_draft_version_page_has_a_release_button_that_confirms_first(
    admin_client, operator, example_component
):
    version = _draft(operator, example_component)
    page = admin_client.get(f"{CHANGELIST_URL}{version.pk}/change/").content.decode()
    release_url = reverse("admin:components_componentversion_release", args=[version.pk])
    assert release_url in page and "Release this version" in page
    confirm = admin_client.get(release_url)
    assert confirm.status_code == 200 and "Yes, release it" in confirm.content.decode()
    version.refresh_from_db()
    assert version.state == "draft"  # the page alone changes nothing

    done = admin_client.post(release_url, {"reason": "QA passed"})
    assert done.status_code == 302 and done["Location"].endswith(f"{version.pk}/change/")
    version.refresh_from_db()
    assert version.state == "released"
    event = AuditEvent.objects.get(action="component_version.release")
    assert event.actor == operator and event.reason == "QA passed"
    page = admin_client.get(f"{CHANGELIST_URL}{version.pk}/change/").content.decode()
    assert release_url not in page  # released: no button any more
    assert 'badge-ok">Released' in page


def test_the_release_button_says_why_a_release_is_refused(admin_client, operator, example_component):
    old = _draft(operator, example_component, 1)
    services.release_version(_draft(operator, example_component, 2, "2"), actor=operator)
    page = admin_client.post(
        reverse("admin:components_componentversion_release", args=[old.pk]), {"reason": ""}
    )
    assert page.status_code == 200 and "would roll" in page.content.decode()
    old.refresh_from_db()
    assert old.state == "draft"


def test_viewers_cannot_release(client, operator, example_component):
    from apps.accounts import roles
    from tests.accounts.helpers import make_user

    version = _draft(operator, example_component)
    client.force_login(make_user(roles.VIEWER, username="vera"))
    url = reverse("admin:components_componentversion_release", args=[version.pk])
    assert url not in client.get(f"{CHANGELIST_URL}{version.pk}/change/").content.decode()
    assert client.post(url, {"reason": "x"}).status_code == 403
    assert client.get(reverse("admin:components_componentversion_release", args=[999999])).status_code == 404
    version.refresh_from_db()
    assert version.state == "draft"
