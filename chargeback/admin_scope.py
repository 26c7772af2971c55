"""Who is asking: the organization (and for budget owners, departments) of a staff request."""

from dataclasses import dataclass

from chargeback.models import Membership, Organization


@dataclass(frozen=True)
class Scope:
    """What one request may see. `department_ids` None means all of the organization's.
    A superuser sees every organization; one who is also a member (the demo's `admin`) has
    that `organization_id` too, and acts for it where a write needs one (an import)."""

    superuser: bool
    organization_id: int | None = None
    department_ids: frozenset | None = None
    role: str | None = None

    @property
    def is_empty(self) -> bool:
        return not self.superuser and self.organization_id is None


def request_scope(request) -> Scope:
    """The caller's scope, read once per request (at most two queries)."""
    cached = getattr(request, "_kt_scope", None)
    if cached is not None:
        return cached
    user = request.user
    if not user.is_authenticated or not user.is_active:
        scope = Scope(superuser=False)
    elif user.is_superuser:
        home = Membership.objects.filter(user=user).values_list("organization_id", flat=True)
        scope = Scope(superuser=True, organization_id=home.first())
    else:
        membership = Membership.objects.filter(user=user).first()
        if membership is None:
            scope = Scope(superuser=False)
        else:
            departments = None
            if membership.role == Membership.Role.BUDGET_OWNER:
                departments = frozenset(membership.departments.values_list("pk", flat=True))
            scope = Scope(
                superuser=False,
                organization_id=membership.organization_id,
                department_ids=departments,
                role=membership.role,
            )
    request._kt_scope = scope
    return scope


def request_organization(request) -> Organization | None:
    """The organization a screen is about: the member's, or for a superuser `?organization=<id>`
    (else their own organization, else the first one)."""
    scope = request_scope(request)
    if not scope.superuser:
        if scope.organization_id is None:
            return None
        return Organization.objects.get(pk=scope.organization_id)
    wanted = request.GET.get("organization")
    qs = Organization.objects.order_by("pk")
    if wanted and wanted.isdigit():
        return qs.filter(pk=int(wanted)).first()
    if scope.organization_id is not None:
        return qs.filter(pk=scope.organization_id).first()
    return qs.first()


def actor_of(request) -> str:
    return request.user.get_username()


class RequestScopedResource:
    """Mixin for django-import-export resources that read and write one organization's rows:
    the admin passes the request, the rows are the staff user's organization's."""

    def __init__(self, *, request=None, **kwargs):
        super().__init__(**kwargs)
        self.request = request

    @property
    def organization_id(self):
        return request_scope(self.request).organization_id if self.request else None
