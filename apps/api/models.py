"""API tokens for scripts. Only a SHA-256 of the token is stored: the token itself is shown
once, when it is created (`manage.py create_api_token USER`)."""

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, help_text="what the token is for")
    # The first characters of the token, to recognise it in lists and logs (not a secret).
    prefix = models.CharField(max_length=12, db_index=True)
    # SHA-256 of the whole token, hex. The token holds 256 random bits, so a fast hash is
    # enough and lets the lookup be one indexed query.
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.prefix}… ({self.user}{', ' + self.name if self.name else ''})"
