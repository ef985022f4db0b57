from rest_framework import authentication, exceptions

from apps.api import services


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token tam_…` (or `Bearer tam_…`). No session, so no CSRF and no OTP
    step: the token is itself the second credential, issued by an administrator."""

    keywords = ("token", "bearer")

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].decode("latin-1").lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = services.authenticate_token(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        return token.user, token

    def authenticate_header(self, request):
        return "Token"
