"""Admins that write through services, like the API, the CLI, config apply and tasks do.

The service is the one place that validates a write, makes it, audits it (one action name per
operation, whoever calls) and starts what follows it (a budget change re-evaluates its
thresholds). So an admin form must neither save the model itself nor check the rules a second
time. Here the service runs as the last step of the form's validation, inside a savepoint: when
it refuses, the savepoint is rolled back and its errors land on the form fields it names (the
page is shown again, nothing written); when it accepts, its result is what the admin goes on
with, and the admin writes no audit row of its own. The service runs after the model's own
field validation, so types and choices are checked before it is asked.

Deletes go through the service too (Django's delete page has already refused rows that others
still point at, as the service would).
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms.models import construct_instance

from chargeback.admin_base import OrgScopedAdmin
from chargeback.errors import ApplicationError


def show_on_form(form, error: ApplicationError) -> None:
    """Put a service's refusal on the form: on the field it names, else above the form."""
    for field, problems in error.field_errors().items():
        form.add_error(field if field in form.fields else None, problems)


class ServiceAdmin(OrgScopedAdmin):
    """Subclasses implement `service_save` (and `service_delete` when rows may be deleted)."""

    def service_save(self, request, form, change: bool):
        """Create or change the row from `form.cleaned_data` through its service; return it."""
        raise NotImplementedError

    def service_delete(self, request, obj) -> None:
        raise NotImplementedError

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        admin = self

        class ServiceForm(form_class):
            def _post_clean(self):
                # The model's field checks (types, lengths, choices) as usual; uniqueness and
                # constraints are the service's to check, in its own words.
                exclude = self._get_validation_exclusions()
                try:
                    self.instance = construct_instance(
                        self, self.instance, self._meta.fields, self._meta.exclude
                    )
                    self.instance.full_clean(
                        exclude=exclude, validate_unique=False, validate_constraints=False
                    )
                except ValidationError as exc:
                    self._update_errors(exc)

            def full_clean(self):
                super().full_clean()
                if self.is_bound and not self._errors:
                    admin._run_service(request, self, change=obj is not None)

        ServiceForm.__name__ = form_class.__name__
        return ServiceForm

    def _run_service(self, request, form, change: bool) -> None:
        try:
            with transaction.atomic():
                form.service_result = self.service_save(request, form, change)
        except ApplicationError as exc:
            show_on_form(form, exc)

    # The service saved the row, its relations and the audit row: the admin's own steps are off.

    def save_form(self, request, form, change):
        return form.service_result

    def save_model(self, request, obj, form, change):
        pass

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        self.service_delete(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.service_delete(request, obj)
