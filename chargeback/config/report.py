"""What an apply did (or, in a dry run, would do), as lines a person reads:

    created department team_engineering
    created consumer_group engineering
    changed consumer_group support (allowed_models, rpm_limit)
    deactivated consumer_group old-bot
    unchanged: target openai

and as JSON for the API. Nothing changed reads exactly `no changes`.
"""

from dataclasses import dataclass, field

from chargeback.models import Organization


@dataclass(frozen=True)
class Change:
    action: str  # created, changed, deactivated, deleted
    kind: str  # department, target, consumer_group, organization, ...
    name: str
    fields: tuple[str, ...] = ()

    def text(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.action} {self.kind} {self.name}{detail}"


@dataclass
class ConfigReport:
    dry_run: bool = False
    changes: list[Change] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, action: str, kind: str, name: str, fields=()) -> None:
        self.changes.append(Change(action, kind, name, tuple(fields)))

    def same(self, kind: str, name: str) -> None:
        self.unchanged.append(f"{kind} {name}")

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def lines(self) -> list[str]:
        if not self.changes:
            lines = ["no changes"]
        else:
            lines = [change.text() for change in self.changes]
            if self.unchanged:
                lines.append("unchanged: " + ", ".join(self.unchanged))
        lines += [f"warning: {warning}" for warning in self.warnings]
        if self.dry_run and self.changes:
            lines.append("dry run: nothing was written")
        return lines

    def text(self) -> str:
        return "\n".join(self.lines())

    def as_dict(self) -> dict:
        return {
            "changed": self.changed,
            "dry_run": self.dry_run,
            "changes": [
                {"action": c.action, "kind": c.kind, "name": c.name, "fields": list(c.fields)}
                for c in self.changes
            ],
            "unchanged": list(self.unchanged),
            "warnings": list(self.warnings),
            "report": self.text(),
        }


@dataclass
class ApplyContext:
    """Handed to each section's `apply`: who is applying, to which organization, and the report."""

    organization: Organization
    actor: str
    via: str
    report: ConfigReport
