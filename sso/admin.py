"""Admin of an organization's single sign-on: the connection saves through its service
(sso/connections.py: owners only, see chargeback/roles.py), the identities it created are read
only."""

from django import forms
from django.contrib import admin

from chargeback.admin_base import OrgScopedAdmin, actor_of
from chargeback.admin_services import ServiceAdmin
from chargeback.errors import ApplicationError
from sso.connections import sso_connection_delete, sso_connection_save
from sso.models import SsoConnection, SsoIdentity


class SsoConnectionForm(forms.ModelForm):
    # Checked by the service's upstream address rules, which accept dotless hosts
    # (`http://keycloak:8080/realms/acme`) Django's URL validator refuses.
    issuer = forms.CharField(max_length=500)

    class Meta:
        model = SsoConnection
        fields = [
            "organization",
            "enabled",
            "display_name",
            "issuer",
            "client_id",
            "client_secret",
            "client_secret_env",
            "scopes",
            "groups_claim",
            "role_map",
            "department_map",
            "default_role",
            "required_claims",
            "listed_on_login_page",
        ]
        help_texts = {
            "issuer": "exactly as the provider's /.well-known/openid-configuration spells it",
            "client_secret": "a provider secret of this organization holding the client secret",
            "client_secret_env": "or an environment variable the platform operator allows for "
            "this organization",
            "groups_claim": "the ID token claim listing the person's groups (Okta, Keycloak: "
            "groups; Entra ID: groups or roles). Empty: roles are kept here, not at the provider",
            "role_map": '{"group": "role"}: owner, admin, finance, viewer, budget_owner',
            "department_map": '{"group": ["team_id", ...]}: members are budget owners of them',
            "default_role": "the role when no group matches; empty refuses the sign-in",
            "required_claims": '{"claim": "value"} the ID token must carry, e.g. {"hd": '
            '"acme.com"} (Google) or {"tid": "<tenant id>"} (Entra ID multi-tenant)',
            "listed_on_login_page": "show a button on the login page (else people type the "
            "organization's id)",
        }


@admin.register(SsoConnection)
class SsoConnectionAdmin(ServiceAdmin):
    form = SsoConnectionForm
    list_display = ["display_name", "issuer", "client_id", "enabled", "listed_on_login_page"]
    list_select_related = ["client_secret"]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "organization"] if obj is not None else readonly

    def service_save(self, request, form, change):
        data = form.cleaned_data
        organization = data.get("organization") or form.instance.organization
        if not change and SsoConnection.objects.filter(organization=organization).exists():
            raise ApplicationError(
                "this organization has its single sign-on connection already: change that one",
                field="organization",
            )
        secret = data.get("client_secret")
        if secret is not None and secret.organization_id != organization.pk:
            raise ApplicationError(
                "not a provider secret of this organization", field="client_secret"
            )
        return sso_connection_save(
            organization=organization,
            issuer=data.get("issuer") or "",
            client_id=data.get("client_id") or "",
            client_secret_env=data.get("client_secret_env") or "",
            client_secret_name=secret.name if secret else "",
            scopes=data.get("scopes") or "",
            groups_claim=data.get("groups_claim") or "",
            role_map=data.get("role_map"),
            department_map=data.get("department_map"),
            default_role=data.get("default_role") or "",
            required_claims=data.get("required_claims"),
            display_name=data.get("display_name") or "",
            enabled=bool(data.get("enabled")),
            listed_on_login_page=bool(data.get("listed_on_login_page")),
            actor=actor_of(request),
            via="admin",
        )

    def service_delete(self, request, obj):
        sso_connection_delete(connection=obj, actor=actor_of(request), via="admin")


@admin.register(SsoIdentity)
class SsoIdentityAdmin(OrgScopedAdmin):
    read_only = True
    list_display = ["user", "subject", "issuer", "groups", "last_sign_in_at", "created_at"]
    list_select_related = ["user"]
    search_fields = ["subject", "user__username"]
    readonly_fields = ["organization", "user", "issuer", "subject", "groups"]
    readonly_fields += ["created_at", "last_sign_in_at"]
