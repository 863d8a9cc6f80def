"""Budget configuration: environment, TOML file, and clear errors for bad entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from aisdk.components.llmops.budgets import Budget, BudgetConfigError, load_budgets


def test_environment_budgets_with_a_default_tenant() -> None:
    b = load_budgets({"AISDK_LLMOPS_BUDGETS": "acme=100/week, *=5", "AISDK_LLMOPS_ALERT_THRESHOLDS": "1,0.75"})
    assert b.for_tenant("acme") == Budget(100.0, "week", (0.75, 1.0))
    assert b.for_tenant("zeta") == Budget(5.0, "month", (0.75, 1.0))
    assert load_budgets({}).for_tenant("acme") is None


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "llmops.toml"
    path.write_text('thresholds = [0.9]\n[budgets.acme]\nlimit = 10\nperiod = "day"\nthresholds = [0.5, 1.0]\n'
                    '[budgets.beta]\nlimit = 3\n')
    b = load_budgets({"AISDK_LLMOPS_CONFIG": str(path), "AISDK_LLMOPS_BUDGETS": "beta=4/day"})
    assert b.for_tenant("acme") == Budget(10.0, "day", (0.5, 1.0))
    assert b.for_tenant("beta") == Budget(4.0, "day", (0.9,))
    assert Budget(10.0, thresholds=(0.5, 1.0)).crossed(5.0) == [0.5]


@pytest.mark.parametrize("env, message", [
    ({"AISDK_LLMOPS_BUDGETS": "acme"}, r"is not TENANT\[@MODEL\]=LIMIT"),
    ({"AISDK_LLMOPS_BUDGETS": "acme=lots"}, "is not a number"),
    ({"AISDK_LLMOPS_BUDGETS": "acme=0"}, "above 0"),
    ({"AISDK_LLMOPS_BUDGETS": "acme=1/year"}, "unknown budget period 'year'"),
    ({"AISDK_LLMOPS_BUDGETS": "acme=1", "AISDK_LLMOPS_ALERT_THRESHOLDS": "half"}, "thresholds must be numbers"),
    ({"AISDK_LLMOPS_BUDGETS": "acme=1", "AISDK_LLMOPS_ALERT_THRESHOLDS": "0,1"}, "fractions above 0"),
    ({"AISDK_LLMOPS_CONFIG": "/nonexistent/llmops.toml"}, "AISDK_LLMOPS_CONFIG"),
    ({"AISDK_LLMOPS_BUDGETS": "acme@=1/day"}, "is not TENANT"),
    ({"AISDK_LLMOPS_BUDGETS": "acme=1/day/week"}, "is not TENANT"),
])
def test_bad_configuration_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(BudgetConfigError, match=message):
        load_budgets(env)


@pytest.mark.parametrize("toml, message", [
    ("[budgets.acme]\nperiod = 'day'\n", "at least `limit`"),
    ("[budgets.acme]\nlimit = 1\nlimits = 2\n", "unknown keys limits"),
    ("[budgets.acme]\nlimit = 'x'\n", "budgets.acme: limit must be a number"),
    ("[budgets.acme]\nlimit = 1\nthresholds = ['x']\n", "budgets.acme: thresholds must be numbers"),
    ("[budgets\n", "AISDK_LLMOPS_CONFIG"),
    ("[budgets.acme]\nlimit = 1\nhard = 'yes'\n", "hard must be true or false"),
    ("[budgets.acme.models.chat]\nlimit = 1\nhard = false\n", "a per-model budget is always hard"),
    ("[budgets.acme.models.chat]\nlimit = 1\nthresholds = [1]\n", "unknown keys thresholds"),
])
def test_bad_files_are_named(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "llmops.toml"
    path.write_text(toml)
    with pytest.raises(BudgetConfigError, match=message):
        load_budgets({"AISDK_LLMOPS_CONFIG": str(path)})


def test_hard_budgets_per_tenant_and_per_model(tmp_path: Path) -> None:
    path = tmp_path / "llmops.toml"
    path.write_text('[budgets.acme]\nlimit = 10\nperiod = "day"\nhard = true\n'
                    '[budgets.acme.models."chat"]\nlimit = 2\nperiod = "month"\n'
                    '[budgets.beta.models."local/extractive"]\nlimit = 1\n')
    b = load_budgets({"AISDK_LLMOPS_CONFIG": str(path),
                      "AISDK_LLMOPS_BUDGETS": "*=5/day,gamma=3/hard,*@openai/gpt-4o=1/day"})
    assert b.for_tenant("acme") == Budget(10.0, "day", hard=True)
    assert b.for_tenant("beta") == Budget(5.0, "day"), "a tenant with only model budgets takes the default"
    assert [(c.name, c.model, c.budget.limit) for c in b.caps("acme", ["chat", "local/extractive"])] == \
        [("acme/day", "", 10.0), ("acme@chat/month", "chat", 2.0)]
    assert [c.name for c in b.caps("beta", ["chat", "local/extractive"])] == ["beta@local/extractive/month"]
    assert [c.name for c in b.caps("gamma", ["openai/gpt-4o"])] == ["gamma/month", "gamma@openai/gpt-4o/day"]
    assert b.caps("delta", ["chat"]) == [], "a soft budget caps nothing"
    assert b.any_hard and not load_budgets({"AISDK_LLMOPS_BUDGETS": "*=5"}).any_hard


