from django import template

from sso.models import SsoConnection

register = template.Library()


@register.simple_tag
def sso_listed_connections():
    """Connections whose owners chose a button on the login page (the page is public: the
    others are reached by typing the organization's id)."""
    return list(
        SsoConnection.objects.filter(enabled=True, listed_on_login_page=True)
        .select_related("organization")
        .order_by("display_name")
    )
