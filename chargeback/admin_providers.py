"""Admin of provider targets and provider secrets. Both save through their services
(chargeback/targets.py, chargeback/provider_secrets.py), so the admin refuses exactly what the
config file and the API refuse (an environment variable the operator does not allow, another
organization's secret, a base URL the gateway may not connect to), with the message on the
field at fault, and the service writes the audit row. A secret's value is write-only here."""

from django import forms
from django.contrib import admin

from chargeback import secretbox
from chargeback.admin_base import actor_of
from chargeback.admin_services import ServiceAdmin
from chargeback.errors import ApplicationError
from chargeback.models import ProviderSecret, ProviderTarget
from chargeback.provider_secrets import (
    provider_secret_delete,
    provider_secret_set,
    provider_secret_value_clean,
)
from chargeback.targets import target_delete, target_upsert

# Service argument -> form field.
TARGET_FIELDS = {"base_url": "base_url", "secret_env": "secret_env", "secret_name": "secret"}


def _organization_of(form):
    organization = form.cleaned_data.get("organization")
    if organization is None and form.instance.organization_id:
        organization = form.instance.organization
    return organization


class ProviderTargetForm(forms.ModelForm):
    # Checked by the service's rules (chargeback/upstream.py), which also accept the dotless hosts
    # (`http://ollama:11434`) Django's URL validator refuses.
    base_url = forms.CharField(required=False, max_length=500)

    class Meta:
        model = ProviderTarget
        fields = [
            "organization",
            "target_id",
            "provider",
            "base_url",
            "secret_env",
            "secret",
            "served_models",
            "options",
        ]
        help_texts = {
            "secret_env": "an environment variable the platform operator allows for this "
            "organization; prefer a stored secret",
            "secret": "a provider secret of this organization",
        }


class ProviderTargetAdmin(ServiceAdmin):
    form = ProviderTargetForm
    list_display = ["target_id", "provider", "base_url", "key_column"]
    list_filter = ["provider"]
    list_select_related = ["secret"]
    search_fields = ["target_id", "base_url"]

    @admin.display(description="Key")
    def key_column(self, obj):
        if obj.secret_id:
            return f"secret {obj.secret.name}"
        return f"env {obj.secret_env}" if obj.secret_env else "—"

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        # The target id is what the config file and usage events name it by.
        return [*readonly, "organization", "target_id"] if obj is not None else readonly

    def service_save(self, request, form, change):
        data = form.cleaned_data
        organization = _organization_of(form)
        secret = data.get("secret")
        if secret is not None and secret.organization_id != organization.pk:
            raise ApplicationError("not a provider secret of this organization", field="secret")
        try:
            target, _, _ = target_upsert(
                organization=organization,
                target_id=data.get("target_id") or form.instance.target_id,
                provider=data["provider"],
                base_url=data.get("base_url") or "",
                secret_env=data.get("secret_env") or "",
                secret_name=secret.name if secret else "",
                served_models=data.get("served_models") or [],
                options=data.get("options") or {},
                actor=actor_of(request),
                via="admin",
            )
        except ApplicationError as exc:  # the service names its arguments, the form its fields
            exc.field = TARGET_FIELDS.get(exc.field, exc.field)
            raise
        return target

    def service_delete(self, request, obj):
        target_delete(target=obj, actor=actor_of(request), via="admin")


class ProviderSecretForm(forms.ModelForm):
    value = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="The provider key. Write-only: it is encrypted and never shown again. "
        "On an existing secret, a new value rotates it; leave empty to keep it.",
    )

    class Meta:
        model = ProviderSecret
        fields = ["organization", "name", "value"]

    def clean_value(self):
        value = self.cleaned_data.get("value") or ""
        if not value:
            if self.instance.pk is None:
                raise forms.ValidationError("Enter the secret's value.")
            return ""
        if not secretbox.configured():
            raise forms.ValidationError(secretbox.MISSING_KEY)
        try:
            return provider_secret_value_clean(value)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None


class ProviderSecretAdmin(ServiceAdmin):
    form = ProviderSecretForm
    list_display = ["name", "hint_column", "created_at", "rotated_at", "targets_column"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("targets")

    @admin.display(description="Value")
    def hint_column(self, obj):
        return f"…{obj.hint}" if obj.hint else "(set)"

    @admin.display(description="Used by")
    def targets_column(self, obj):
        return ", ".join(sorted(t.target_id for t in obj.targets.all())) or "—"

    def get_fields(self, request, obj=None):
        fields = ["organization", "name", "value"]
        return [*fields, "hint_column", "created_at", "rotated_at"] if obj is not None else fields

    def get_readonly_fields(self, request, obj=None):
        readonly = [*super().get_readonly_fields(request, obj), "hint_column", "rotated_at"]
        # The name is sealed into the ciphertext and is what targets reference.
        return [*readonly, "organization", "name"] if obj is not None else readonly

    def service_save(self, request, form, change):
        value = form.cleaned_data.get("value")
        if not value:
            return form.instance  # nothing to change: the name and organization are fixed
        secret, _ = provider_secret_set(
            organization=_organization_of(form),
            name=form.cleaned_data.get("name") or form.instance.name,
            value=value,
            actor=actor_of(request),
            via="admin",
        )
        return secret

    def service_delete(self, request, obj):
        provider_secret_delete(secret=obj, actor=actor_of(request), via="admin")


admin.site.register(ProviderTarget, ProviderTargetAdmin)
admin.site.register(ProviderSecret, ProviderSecretAdmin)
