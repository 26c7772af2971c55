"""Management API of the tenancy area: validate and apply a config file.

The body is the YAML text itself (`Content-Type: text/yaml` or `application/yaml`) or JSON
`{"yaml": "..."}`. Everything is scoped to the admin token's organization. A bad file is a 400
with `detail`, `code: invalid_config`, `path` (the key path) and `line`.
"""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from chargeback.auth import actor_of, via_of
from chargeback.config import config_apply, config_validate


class YamlTextParser(BaseParser):
    """Hands the view the body as text; the config module parses it (with line numbers)."""

    media_type = "text/yaml"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError({"detail": "the config file must be UTF-8 text"}) from None


class ApplicationYamlParser(YamlTextParser):
    media_type = "application/yaml"


class XYamlParser(YamlTextParser):
    media_type = "application/x-yaml"


CONFIG_PARSERS = [JSONParser, YamlTextParser, ApplicationYamlParser, XYamlParser]


def _config_text(request) -> str:
    data = request.data
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and isinstance(data.get("yaml"), str):
        return data["yaml"]
    raise ValidationError(
        {"yaml": 'send the YAML as the body (Content-Type: text/yaml) or as JSON {"yaml": "..."}'}
    )


class ConfigInputSerializer(serializers.Serializer):
    yaml = serializers.CharField(help_text="The config file's text.")


class ChangeSerializer(serializers.Serializer):
    action = serializers.CharField()
    kind = serializers.CharField()
    name = serializers.CharField()
    fields = serializers.ListField(child=serializers.CharField())


class ConfigReportSerializer(serializers.Serializer):
    changed = serializers.BooleanField()
    dry_run = serializers.BooleanField()
    changes = ChangeSerializer(many=True)
    unchanged = serializers.ListField(child=serializers.CharField())
    warnings = serializers.ListField(child=serializers.CharField())
    report = serializers.CharField(help_text="The same report as lines of text.")


_REQUEST = {
    "application/json": ConfigInputSerializer,
    "text/yaml": {"type": "string"},
    "application/yaml": {"type": "string"},
}
_EXAMPLE = OpenApiExample(
    "A bad file",
    value={
        "detail": "consumer_groups[1].wallet_team_id: required key is missing (line 12)",
        "code": "invalid_config",
        "path": "consumer_groups[1].wallet_team_id",
        "line": 12,
    },
    response_only=True,
    status_codes=["400"],
)


class ConfigValidateApi(APIView):
    parser_classes = CONFIG_PARSERS

    @extend_schema(
        operation_id="config_validate",
        summary="Check a config file and report what applying it would change (writes nothing)",
        request=_REQUEST,
        responses={200: ConfigReportSerializer},
        examples=[_EXAMPLE],
    )
    def post(self, request):
        report = config_validate(
            organization=request.organization,
            text=_config_text(request),
            actor=actor_of(request),
            via=via_of(request),
        )
        return Response(ConfigReportSerializer(report.as_dict()).data)


class ConfigApplyApi(APIView):
    parser_classes = CONFIG_PARSERS

    @extend_schema(
        operation_id="config_apply",
        summary="Apply a config file to the token's organization (idempotent)",
        request=_REQUEST,
        parameters=[OpenApiParameter("dry_run", bool, description="Report only, write nothing.")],
        responses={200: ConfigReportSerializer},
        examples=[_EXAMPLE],
    )
    def post(self, request):
        dry_run = request.query_params.get("dry_run", "").lower() in {"1", "true", "yes"}
        report = config_apply(
            organization=request.organization,
            text=_config_text(request),
            actor=actor_of(request),
            via=via_of(request),
            dry_run=dry_run,
        )
        return Response(ConfigReportSerializer(report.as_dict()).data)
