import threading

import pytest
from django.db import connection

from chargeback.config import config_apply, config_validate
from chargeback.errors import ConfigError
from chargeback.keys import hash_key
from chargeback.models import AuditLog, ConsumerGroup, Department, ProviderTarget
from tests.config.conftest import SEED_KEYS, database_text, tenancy_snapshot
from tests.factories import ConsumerGroupFactory, DepartmentFactory

pytestmark = pytest.mark.django_db


def apply(org, text, **kwargs):
    return config_apply(organization=org, text=text, actor="user:ana", via="config", **kwargs)


def test_the_seed_file_creates_three_departments_and_three_groups(org, seed_text):
    report = apply(org, seed_text)

    assert sorted(Department.objects.filter(organization=org).values_list("team_id", "name")) == [
        ("team_engineering", "Engineering"),
        ("team_legal", "Legal"),
        ("team_support", "Support"),
    ]
    groups = {g.name: g for g in ConsumerGroup.objects.filter(organization=org)}
    assert set(groups) == {"engineering", "support", "legal"}
    assert groups["support"].department.team_id == "team_support"
    assert groups["engineering"].key_hash == hash_key("kt_cg_engineering_prod")
    assert groups["engineering"].key_prefix == "kt_cg_engine"
    assert all(g.is_active for g in groups.values())
    assert report.lines()[:3] == [
        "created target openai",
        "created department team_engineering",
        "created consumer_group engineering",
    ]
    assert "created consumer_group legal" in report.lines()


def test_raw_keys_never_reach_any_column_of_any_table(org, seed_text):
    apply(org, seed_text)

    everything = database_text()
    assert hash_key("kt_cg_support_prod") in everything  # the search does see the rows
    for raw in SEED_KEYS:
        assert raw not in everything


def test_a_target_keeps_only_the_name_of_its_secret(org, seed_text, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value-123")
    apply(org, seed_text)

    target = ProviderTarget.objects.get(organization=org)
    assert (target.target_id, target.provider, target.secret_env) == (
        "openai",
        "openai",
        "OPENAI_API_KEY",
    )
    assert "sk-very-secret-value-123" not in database_text()


def test_cost_tracking_sets_the_organization_switches(org, seed_text):
    org.wallet_enforcement = False
    org.save()

    report = apply(org, seed_text)

    org.refresh_from_db()
    assert org.wallet_enforcement is True
    assert "changed cost_tracking acme (wallet_enforcement)" in report.lines()
    report = apply(org, seed_text.replace("wallet_enforcement: true", "wallet_enforcement: false"))
    org.refresh_from_db()
    assert org.wallet_enforcement is False
    assert org.cost_tracking_enabled is True


def test_applying_twice_reports_no_changes_and_writes_nothing(org, seed_text):
    apply(org, seed_text)
    before = tenancy_snapshot()

    report = apply(org, seed_text)

    assert not report.changed
    assert report.lines()[0] == "no changes"
    assert tenancy_snapshot() == before


def test_a_changed_file_reports_only_what_changed(org, seed_text):
    apply(org, seed_text)
    changed = seed_text.replace(
        "    api_key: kt_cg_support_prod\n    wallet_team_id: team_support\n",
        "    api_key: kt_cg_support_rotated\n    wallet_team_id: team_support\n"
        "    allowed_models: [gpt-4o-mini]\n    rate_limits: {rpm: 600, tpm: 200000}\n",
    )

    report = apply(org, changed)

    assert report.lines()[0] == (
        "changed consumer_group support (api_key, allowed_models, rate_limits.rpm, rate_limits.tpm)"
    )
    assert report.lines()[1].startswith("unchanged: target openai, consumer_group engineering")
    support = ConsumerGroup.objects.get(organization=org, name="support")
    assert support.key_hash == hash_key("kt_cg_support_rotated")
    assert (support.allowed_models, support.rpm_limit, support.tpm_limit) == (
        ["gpt-4o-mini"],
        600,
        200000,
    )
    assert not ConsumerGroup.objects.filter(key_hash=hash_key("kt_cg_support_prod")).exists()


def test_a_group_left_out_of_the_file_is_deactivated_not_deleted(org, seed_text):
    apply(org, seed_text)
    without_legal = seed_text.replace(
        "  - name: legal\n    api_key: kt_cg_legal_prod\n    wallet_team_id: team_legal\n", ""
    )

    report = apply(org, without_legal)

    legal = ConsumerGroup.objects.get(organization=org, name="legal")
    assert legal.is_active is False
    assert "deactivated consumer_group legal (not in the file)" in report.lines()
    assert apply(org, without_legal).lines()[0] == "no changes"
    report = apply(org, seed_text)  # back in the file: back on
    assert "changed consumer_group legal (active)" in report.lines()
    assert ConsumerGroup.objects.get(pk=legal.pk).is_active is True


def test_a_target_left_out_of_the_file_is_deleted(org, seed_text, settings):
    settings.KT_UPSTREAM_ALLOW_HOSTS = ["ollama"]  # the operator's compose service
    two_targets = seed_text.replace(
        "consumer_groups:",
        "    - id: local\n      provider: openai\n      base_url: http://ollama:11434/v1/\n"
        "      models: [fake-small]\n      timeouts: {connect: 2, read: 30.5}\nconsumer_groups:",
    )
    apply(org, two_targets)
    local = ProviderTarget.objects.get(organization=org, target_id="local")
    assert local.base_url == "http://ollama:11434/v1"
    assert local.served_models == ["fake-small"]
    assert local.options == {"timeouts": {"connect": 2.0, "read": 30.5}}

    report = apply(org, seed_text)

    assert "deleted target local" in report.lines()
    assert list(
        ProviderTarget.objects.filter(organization=org).values_list("target_id", flat=True)
    ) == ["openai"]


def test_a_section_absent_from_the_file_is_left_alone(org, seed_text):
    apply(org, seed_text)

    report = apply(org, "version: '1'\ncost_tracking:\n  wallet_enforcement: false\n")

    assert ConsumerGroup.objects.filter(organization=org, is_active=True).count() == 3
    assert ProviderTarget.objects.filter(organization=org).count() == 1
    assert report.lines() == ["changed cost_tracking acme (wallet_enforcement)"]


def test_an_empty_group_list_deactivates_every_group(org, seed_text):
    apply(org, seed_text)

    apply(org, "version: '1'\nconsumer_groups: []\n")

    assert not ConsumerGroup.objects.filter(organization=org, is_active=True).exists()


def test_api_key_ref_reads_the_key_from_the_environment(org, monkeypatch):
    org.env_refs_allowed = ["KT_TEST_GROUP_KEY"]  # the operator allows it (chargeback/env_refs.py)
    org.save()
    monkeypatch.setenv("KT_TEST_GROUP_KEY", "kt_cg_from_the_environment")
    text = (
        "version: '1'\nconsumer_groups:\n  - name: ops\n    api_key_ref: {env: KT_TEST_GROUP_KEY}\n"
        "    wallet_team_id: team_shared_ops\n"
    )

    apply(org, text)

    ops = ConsumerGroup.objects.get(organization=org, name="ops")
    assert ops.key_hash == hash_key("kt_cg_from_the_environment")
    assert ops.key_env_ref == "KT_TEST_GROUP_KEY"
    assert ops.department.name == "Shared Ops"
    assert "kt_cg_from_the_environment" not in database_text()
    monkeypatch.setenv("KT_TEST_GROUP_KEY", "kt_cg_rotated_in_the_environment")
    assert apply(org, text).lines()[0] == "changed consumer_group ops (api_key)"


def test_an_existing_department_is_reused_and_not_renamed(org, seed_text):
    DepartmentFactory(organization=org, team_id="team_support", name="Customer Support")

    report = apply(org, seed_text)

    assert "created department team_support" not in report.lines()
    assert (
        Department.objects.get(organization=org, team_id="team_support").name == "Customer Support"
    )


def test_every_change_writes_an_audit_row_with_actor_and_via(org, seed_text):
    apply(org, seed_text)

    rows = AuditLog.objects.filter(organization=org)
    assert {(r.actor, r.via) for r in rows} == {("user:ana", "config")}
    assert sorted(r.action for r in rows) == [
        "consumer_group.create",
        "consumer_group.create",
        "consumer_group.create",
        "department.create",
        "department.create",
        "department.create",
        "target.create",
    ]


def test_a_dry_run_reports_the_changes_and_writes_nothing(org, seed_text):
    before = tenancy_snapshot()

    report = config_validate(organization=org, text=seed_text, actor="user:ana", via="api")

    assert "created consumer_group engineering" in report.lines()
    assert report.lines()[-1] == "dry run: nothing was written"
    assert tenancy_snapshot() == before


def test_a_key_another_organization_uses_is_refused_and_nothing_changes(
    org, outsider_org, seed_text
):
    ConsumerGroupFactory(
        department=DepartmentFactory(organization=outsider_org), key="kt_cg_legal_prod"
    )
    before = tenancy_snapshot()

    with pytest.raises(ConfigError) as caught:
        apply(org, seed_text)

    assert caught.value.path == "consumer_groups[2].api_key"
    assert caught.value.line == 16
    assert "this key cannot be used; choose another" in caught.value.message
    assert "organization" not in caught.value.message
    assert tenancy_snapshot() == before


def test_it_does_not_touch_another_organizations_groups(org, outsider_org, seed_text):
    theirs = ConsumerGroupFactory(department=DepartmentFactory(organization=outsider_org))

    apply(org, "version: '1'\nconsumer_groups: []\n")

    theirs.refresh_from_db()
    assert theirs.is_active is True


@pytest.mark.django_db(transaction=True)
def test_two_applies_at_once_queue_up_and_the_second_finds_no_changes(org, seed_text):
    barrier, reports, errors = threading.Barrier(2), [], []

    def run():
        try:
            barrier.wait(timeout=10)
            reports.append(apply(org, seed_text))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(report.changed for report in reports) == [False, True]
    assert ConsumerGroup.objects.filter(organization=org).count() == 3
    assert AuditLog.objects.filter(organization=org).count() == 7
