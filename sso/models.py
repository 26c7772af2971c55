"""Single sign-on (OpenID Connect): one identity provider per organization, and the people it
signed in.

The organization a person lands in is the connection's, chosen by the URL of the flow and
proven by the provider: the ID token must come from the connection's issuer, for its client id,
and carry the connection's required claims. Nothing the person types decides it.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from chargeback.models import Membership, Organization, ProviderSecret


class SsoConnection(models.Model):
    """An organization's OpenID Connect provider (Okta, Entra ID, Google, Keycloak, ...)."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="sso_connection"
    )
    enabled = models.BooleanField(default=True)
    display_name = models.CharField(max_length=100, default="single sign-on")
    # Exactly as the provider's discovery document spells it (trailing slash included or not).
    issuer = models.CharField(max_length=500)
    client_id = models.CharField(max_length=255)
    # The client secret: an environment variable the operator allows the organization, or one of
    # its stored (encrypted) provider secrets, as for provider targets.
    client_secret_env = models.CharField(max_length=100, blank=True)
    # RESTRICT: a secret in use cannot be deleted, unless its organization is (cascade).
    client_secret = models.ForeignKey(
        ProviderSecret,
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="sso_connections",
    )
    scopes = models.CharField(max_length=300, default="openid email profile")
    # Empty: roles are kept in the portal (first sign-in gets `default_role`, later ones keep
    # what an owner set). Set: the provider decides the role on every sign-in.
    groups_claim = models.CharField(max_length=100, blank=True, default="groups")
    role_map = models.JSONField(default=dict, blank=True)  # {group: role}
    department_map = models.JSONField(default=dict, blank=True)  # {group: [team_id, ...]}
    default_role = models.CharField(
        max_length=20, blank=True, choices=Membership.Role.choices, default=""
    )
    # {claim: value or [values]}: what proves the person is this organization's when the issuer
    # is shared (Google's `hd`, Entra's `tid`, ...). Every one must match.
    required_claims = models.JSONField(default=dict, blank=True)
    # A button with `display_name` on the login page (else people type the organization's id).
    listed_on_login_page = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "single sign-on connection"

    def __str__(self):
        return f"{self.display_name} ({self.issuer})"


class SsoIdentity(models.Model):
    """One person at one organization's provider (issuer + subject), bound to the one user
    account it created. A sign-in never takes over an account it did not create, whatever e-mail it claims."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="sso_identities"
    )
    # The organization's connection may be replaced; the person stays the same person as long
    # as the issuer does.
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity"
    )
    groups = models.JSONField(default=list, blank=True)  # as of the last sign-in
    created_at = models.DateTimeField(default=timezone.now)
    last_sign_in_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"
        ordering = ["-last_sign_in_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "issuer", "subject"], name="sso_identity_unique"
            )
        ]

    def __str__(self):
        return f"{self.user} ({self.subject})"
