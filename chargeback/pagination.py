"""The management API's pages: `?limit=&offset=` on every list, answered as
`{count, next, previous, results}`.

DRF's LimitOffsetPagination silently replaces a limit or offset it cannot read with its default
(`?limit=abc` returned the first 100 rows); here such a value is a DRF 400 that names the
parameter, `{"limit": ["A valid integer is required."]}`, on every list alike. A limit above
`max_limit` is lowered to it (documented as "at most").
"""

from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


def _query_integer(request, name: str, *, minimum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return serializers.IntegerField(min_value=minimum).run_validation(raw)
    except ValidationError as exc:
        raise ValidationError({name: exc.detail}) from None


class LimitOffsetPage(LimitOffsetPagination):
    default_limit = 100
    max_limit = 500

    @property
    def limit_query_description(self):
        return (
            f"Rows per page, 1 or more (default {self.default_limit}); "
            f"more than {self.max_limit} is lowered to {self.max_limit}."
        )

    offset_query_description = "Rows to skip, 0 or more (default 0)."

    def get_limit(self, request) -> int:
        limit = _query_integer(request, self.limit_query_param, minimum=1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request) -> int:
        offset = _query_integer(request, self.offset_query_param, minimum=0)
        return offset or 0

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1},
            self.offset_query_param: {"minimum": 0},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
