"""Second-factor pages: verify a TOTP code (or a backup code), enrol an authenticator app,
and make a new set of backup codes."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from apps.accounts import services
from apps.accounts.forms import SecondFactorCodeForm, TotpCodeForm


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("admin:index")


@never_cache
@sensitive_post_parameters("token")
@login_required(login_url="admin:login")
def otp_verify(request):
    if not services.has_confirmed_device(request.user):
        return HttpResponseRedirect(f"{reverse('accounts:otp-enrol')}?next={_next_url(request)}")
    form = SecondFactorCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = services.verify_second_factor(request, form.cleaned_data["token"])
        if device is not None:
            if device.name == services.BACKUP_CODES_DEVICE_NAME:
                left = services.backup_codes_left(request.user)
                messages.warning(
                    request,
                    f"You used a backup code ({left} left). Lost your phone? Enrol a new "
                    f"authenticator app now at {reverse('accounts:otp-enrol')}: it replaces "
                    "the old one.",
                )
            return HttpResponseRedirect(_next_url(request))
        form.add_error("token", "That code is not valid (or too many attempts: wait and retry).")
    return render(
        request,
        "accounts/otp_verify.html",
        {
            "form": form,
            "next": _next_url(request),
            "title": "Second factor",
        },
    )


@never_cache
@sensitive_post_parameters("token")
@login_required(login_url="admin:login")
def otp_enrol(request):
    # A second device may only be added from a session that already passed the first one.
    if services.has_confirmed_device(request.user) and not request.user.is_verified():
        return HttpResponseRedirect(
            f"{reverse('accounts:otp-verify')}?next={request.get_full_path()}"
        )
    device = services.pending_totp_device(request.user)
    form = TotpCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if services.confirm_totp_enrolment(request, form.cleaned_data["token"]):
            messages.success(
                request, "Your authenticator app is enrolled; it is required at every login."
            )
            codes = services.generate_backup_codes(
                request.user, actor=request.user, request=request
            )
            return _show_backup_codes(request, codes)
        form.add_error(
            "token", "That code is not valid: check the app's clock and try the current code."
        )
    uri = device.config_url
    return render(
        request,
        "accounts/otp_enrol.html",
        {
            "form": form,
            "next": _next_url(request),
            "title": "Enrol an authenticator app",
            "otpauth_uri": uri,
            "qr_svg": services.otpauth_qr_svg(uri),
            "required": services.second_factor_required(request.user),
        },
    )


@never_cache
@login_required(login_url="admin:login")
def backup_codes(request):
    """How many backup codes are left; POST makes a new set (the old one stops working)."""
    if not services.has_totp_device(request.user):
        return HttpResponseRedirect(f"{reverse('accounts:otp-enrol')}?next={_next_url(request)}")
    if not request.user.is_verified():
        return HttpResponseRedirect(
            f"{reverse('accounts:otp-verify')}?next={request.get_full_path()}"
        )
    if request.method == "POST":
        codes = services.generate_backup_codes(request.user, actor=request.user, request=request)
        return _show_backup_codes(request, codes)
    return render(
        request,
        "accounts/otp_backup_codes.html",
        {
            "title": "Backup codes",
            "left": services.backup_codes_left(request.user),
            "next": _next_url(request),
        },
    )


def _show_backup_codes(request, codes):
    """The codes, this once: they are not kept in the session or shown again."""
    return render(
        request,
        "accounts/otp_backup_codes.html",
        {"title": "Backup codes", "codes": codes, "next": _next_url(request)},
    )
