"""An export job's manifest as the admin shows it: a two-column table (what, value) rather than
one block of JSON. Nested objects become "key: value" lines in their cell, lists are joined."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


def _value(value) -> SafeString | str:
    if isinstance(value, dict):
        return format_html_join(
            "",
            '<div><span class="kt-key">{}</span>: {}</div>',
            ((key, _value(inner)) for key, inner in value.items()),
        )
    if isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            return ", ".join(str(item) for item in value)
        return format_html_join("", "<div>{}</div>", ((_value(item),) for item in value))
    return "—" if value is None or value == "" else str(value)


def manifest_table(manifest: dict) -> SafeString | str:
    if not manifest:
        return "—"
    rows = format_html_join(
        "",
        '<tr><th scope="row">{}</th><td>{}</td></tr>',
        ((key.replace("_", " "), _value(value)) for key, value in manifest.items()),
    )
    return format_html('<table class="kt-manifest"><tbody>{}</tbody></table>', rows)
