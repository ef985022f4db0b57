"""The admin index: the dashboard above the stock app list, for every role; never anonymous."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from apps.accounts import roles
from apps.dashboard import services
from tests.accounts.helpers import ANONYMOUS, client_for, make_user
from tests.dashboard.test_services import MAX_QUERIES

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_overview():
    cache.delete(services.OVERVIEW_CACHE_KEY)
    yield
    cache.delete(services.OVERVIEW_CACHE_KEY)


@pytest.mark.parametrize(
    "role", [roles.VIEWER, roles.OPERATOR, roles.SECURITY_OFFICER, roles.ADMINISTRATOR]
)
def test_every_role_sees_the_dashboard_and_the_app_list(fleet, role):
    client, _ = client_for(role)
    page = client.get(reverse("admin:index"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "The fleet at a glance" in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"') >= 5
    assert '<title id="chart-' in html and ">Devices by state</title>" in html
    # The stock app list is still there, below the dashboard.
    assert html.index("fleet-dashboard") < html.index('class="app-devices module')
    assert reverse("admin:devices_device_changelist") in html


def test_the_viewer_sees_the_fleets_numbers_and_failures(fleet):
    client, _ = client_for(roles.VIEWER)
    html = client.get(reverse("admin:index")).content.decode()
    assert "ERR_MANIFEST_PROCESSING_FAILED: boom" in html  # failed delivery with its reason
    assert "signature does not verify" in html  # dropped exchange
    assert "ERR_TEMPORARY_ERROR busy" in html  # agent error
    assert str(fleet["v1"]) in html  # compromise in progress
    assert reverse("admin:policies_compromiseresponse_change", args=[fleet["response"].pk]) in html
    assert "storage-ta: devices per version" in html
    assert "?state=active" in html  # bars lead to the filtered device list


def test_a_device_list_link_from_the_histogram_is_a_valid_filter(fleet):
    client, _ = client_for(roles.VIEWER)
    url = reverse("admin:devices_device_changelist") + "?last_contact_at__isnull=True"
    assert url.split("?")[1] in client.get(reverse("admin:index")).content.decode()
    page = client.get(url)
    assert page.status_code == 200 and "never" in page.content.decode()


def test_anonymous_never_sees_it(fleet):
    client, _ = client_for(ANONYMOUS)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    login = client.get(response["Location"]).content.decode()
    assert "fleet at a glance" not in login and 'class="chart"' not in login


def test_staff_without_the_device_permission_gets_the_app_list_only(fleet):
    client, _ = client_for(ANONYMOUS)
    user = make_user(None, username="staff-only", is_staff=True)
    client.force_login(user)
    page = client.get(reverse("admin:index"))
    assert page.status_code == 200 and "fleet at a glance" not in page.content.decode()


def test_user_content_is_escaped(fleet):
    fleet["devices"][0].__class__.objects.filter(pk=fleet["devices"][0].pk).update(
        name="<script>x</script>"
    )
    fleet["storage"].__class__.objects.filter(pk=fleet["storage"].pk).update(name="<img src=x>")
    client, _ = client_for(roles.VIEWER)
    html = client.get(reverse("admin:index")).content.decode()
    assert "<script>x</script>" not in html and "<img src=x>" not in html
    assert "&lt;img src=x&gt;" in html


def test_the_index_query_count_does_not_depend_on_the_fleet(fleet, django_assert_max_num_queries):
    client, _ = client_for(roles.VIEWER)
    client.get(reverse("admin:index"))  # session, permissions cached
    with django_assert_max_num_queries(40):
        client.get(reverse("admin:index"))  # overview from the cache
    cache.delete(services.OVERVIEW_CACHE_KEY)
    with django_assert_max_num_queries(40 + MAX_QUERIES):
        client.get(reverse("admin:index"))


def test_the_dashboard_reloads_as_it_says(fleet):
    client, _ = client_for(roles.VIEWER)
    html = client.get(reverse("admin:index")).content.decode()
    assert f'<meta http-equiv="refresh" content="{services.PAGE_REFRESH_SECONDS}">' in html
    assert f"This page reloads every {services.PAGE_REFRESH_SECONDS} s" in html
    assert "refreshed every 30 s" not in html  # the old label promised what the page never did


def test_the_login_page_does_not_reload():
    client, _ = client_for(ANONYMOUS)
    html = client.get(reverse("admin:login")).content.decode()
    assert 'http-equiv="refresh"' not in html


def test_compromise_progress_links_to_the_devices_in_each_state(fleet):
    client, _ = client_for(roles.VIEWER)
    html = client.get(reverse("admin:index")).content.decode()
    response = fleet["response"]
    link = (
        f"{reverse('admin:policies_queuedaction_changelist')}"
        f"?compromise__id__exact={response.pk}&amp;progress=not_contacted"
    )
    assert link in html
    assert "0 of 2 devices removed" in html
    page = client.get(link.replace("&amp;", "&"))
    assert page.status_code == 200
    assert page.content.decode().count('class="field-device_link') == 2
