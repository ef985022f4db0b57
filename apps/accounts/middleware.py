"""The second factor, enforced for every session-authenticated request.

A logged-in user whose session is not OTP-verified is sent to verify a code (when they have
a TOTP device) or to enrol one (when their role requires it and they have none). API calls
get a 403 instead of a redirect. Requests without a session user (TEEP agents, payload
fetches, API tokens) pass untouched. Runs after django-otp's OTPMiddleware.
"""

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import reverse

from apps.accounts import services

API_PREFIX = "/api/"


class SecondFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        redirect = self.check(request)
        return redirect if redirect is not None else self.get_response(request)

    def check(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or user.is_verified():
            return None
        if not getattr(settings, "OTP_ENFORCED", True):
            return None
        if request.path in self.exempt_paths():
            return None
        enrolled = services.has_confirmed_device(user)
        if not enrolled and not services.second_factor_required(user):
            return None  # TOTP is optional for this user and they have not enrolled
        if request.path.startswith(API_PREFIX):
            return JsonResponse(
                {"detail": "Second factor required: verify a TOTP code first."}, status=403
            )
        target = reverse("accounts:otp-verify" if enrolled else "accounts:otp-enrol")
        return HttpResponseRedirect(f"{target}?{urlencode({'next': request.get_full_path()})}")

    @staticmethod
    def exempt_paths():
        return {
            reverse("accounts:otp-verify"),
            reverse("accounts:otp-enrol"),
            reverse("admin:logout"),
        }
