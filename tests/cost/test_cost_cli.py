"""``overcast cost``: the app as its argument and the target as --target, a profile file and
flags, tables per cloud and the mix, JSON for machines, clear errors."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overcast.cli import cli

runner = CliRunner()

APP = """
import overcast

app = overcast.App({name!r})
users = app.kv("users")
signups = app.topic("signups")
key = app.secret("mail-key")


@app.subscribe(signups)
async def welcome(event):
    pass


@app.subscribe(signups)
async def count(event):
    pass
"""

TOML = """[app]
entry = "app:app"

[targets.aws]
kv.users = "dynamodb://users"
topic.signups = "sns://signups"
secret.mail-key = "secretsmanager://demo"
"""

PROFILE = """
[workload]
requests = 1_000_000
duration_ms = 80
memory_mb = 256

[resources.users]
get = 1
put = 0.2
item_bytes = 800
stored_gb = 3

[resources.signups]
publish = 0.05
item_bytes = 400
"""


def _project(folder: Path, profile: str = PROFILE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(APP.format(name=f"cost{uuid.uuid4().hex[:6]}"))
    (folder / "overcast.toml").write_text(TOML)
    (folder / "profile.toml").write_text(profile)
    return folder


def test_json_has_every_cloud_the_mix_and_the_target(tmp_path: Path) -> None:
    app = _project(tmp_path / "app")
    result = runner.invoke(cli, ["cost", str(app), "-t", "aws", "--profile", str(app / "profile.toml"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    clouds = {plan["cloud"]: plan for plan in out["clouds"]}
    assert set(clouds) == {"aws", "gcp", "azure"}
    for plan in clouds.values():
        assert set(plan["resources"]) == {"users", "signups", "mail-key"} and not plan["missing"]
        parts = sum(i["cost"] for i in plan["compute"]) + sum(r["total"] for r in plan["resources"].values())
        assert abs(parts - plan["total"]) < 1e-4
    target = out["target"]
    assert target["name"] == "aws" and target["cloud"] == "aws"
    assert target["resources"]["users"]["service"] == "DynamoDB on-demand"
    assert target["resources"]["signups"]["scheme"] == "sns"
    # two subscriptions: each receives and deletes each of the 50,000 published messages
    sqs = next(i for i in target["resources"]["signups"]["items"] if i["label"] == "requests")
    assert sqs["quantity"] == 2 * 2 * 50_000
    assert out["mix"]["total"] <= min(plan["total"] for plan in out["clouds"]) + 1e-9
    assert out["saving"] >= 0 and out["prices_retrieved"]
    every_item = [i for p in out["clouds"] for r in p["resources"].values() for i in r["items"]]
    assert all(i["source"].startswith("https://") for i in every_item)


def test_flags_override_the_profile_and_free_tiers_can_be_left_out(tmp_path: Path) -> None:
    app = _project(tmp_path / "app")
    base = ["cost", str(app), "--profile", str(app / "profile.toml"), "--json"]
    more = json.loads(runner.invoke(cli, [*base, "--requests", "10000000"]).output)
    less = json.loads(runner.invoke(cli, base).output)
    assert more["requests"] == 10_000_000 and less["requests"] == 1_000_000
    paid = json.loads(runner.invoke(cli, [*base, "--no-free-tier"]).output)
    for cheap, full in zip(less["clouds"], paid["clouds"], strict=True):
        assert full["total"] > cheap["total"]
        assert all(i["free"] == 0 for i in full["compute"])


def test_the_table_names_each_cloud_and_the_saving(tmp_path: Path) -> None:
    app = _project(tmp_path / "app")
    result = runner.invoke(cli, ["cost", str(app), "--requests", "500000"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for text in (
        "monthly cost per resource",
        "all on aws",
        "all on gcp",
        "all on azure",
        "cheapest mix",
        "cheapest single cloud",
        "DynamoDB",
        "Firestore",
        "Table storage",
    ):
        assert text in result.output
    tables = result.output.split("priced with figures not confirmed")[0]  # the footnote names price keys
    assert "read request unit" not in tables and "wru" not in tables  # line items: --lines
    detailed = runner.invoke(cli, ["cost", str(app), "--requests", "500000", "--lines"], env={"COLUMNS": "160"})
    assert "wru" in detailed.output and "vCPU-seconds" in detailed.output


def test_a_target_resource_no_family_prices_is_named(tmp_path: Path) -> None:
    app = _project(tmp_path / "app")
    toml = (app / "overcast.toml").read_text().replace('kv.users = "dynamodb://users"', 'kv.users = "memory://users"')
    (app / "overcast.toml").write_text(toml)
    result = runner.invoke(cli, ["cost", str(app), "-t", "aws", "--requests", "1000", "--json"])
    assert result.exit_code == 0
    assert "users uses memory://, which no installed family prices" in result.stderr
    assert json.loads(result.stdout)["target"]["missing"] == ["users"]


def test_a_profile_naming_a_resource_the_app_lacks_is_refused(tmp_path: Path) -> None:
    app = _project(tmp_path / "app", PROFILE + "\n[resources.orders]\nget = 1\n")
    result = runner.invoke(cli, ["cost", str(app), "--profile", str(app / "profile.toml")])
    assert result.exit_code == 1
    assert "declares no resource 'orders'" in result.output and "users" in result.output


def test_without_requests_it_says_how_to_give_them(tmp_path: Path) -> None:
    app = _project(tmp_path / "app")
    result = runner.invoke(cli, ["cost", str(app)])
    assert result.exit_code == 1 and "--requests" in result.output


def test_cost_takes_the_app_first_and_the_target_as_an_option(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["cost", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "cost [OPTIONS] [APP]" in result.output
    assert "--target" in result.output and "-t" in result.output and "--profile" in result.output


def test_the_docs_show_what_the_example_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/cost.md's table is the users example's output, to the character."""
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "cost.md").read_text(encoding="utf-8")
    command = "$ overcast cost examples/users --profile examples/users/cost-profile.toml\n"
    shown = page[page.index(command) + len(command) :].split("```", 1)[0]
    profile = (root / "examples" / "users" / "cost-profile.toml").read_text(encoding="utf-8")
    assert "```toml\n" + profile.split("\n", 1)[1] + "```" in page  # the workload it states is the file's
    monkeypatch.setenv("OVERCAST_PRICES_DIR", str(tmp_path))  # the shipped prices, not a refreshed copy
    monkeypatch.chdir(root)
    result = runner.invoke(
        cli, ["cost", "examples/users", "--profile", "examples/users/cost-profile.toml"], env={"COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.output
    printed = "\n".join(line.rstrip() for line in result.stdout.splitlines()) + "\n"
    assert printed == shown


def test_a_replicated_target_prices_its_replica_and_the_traffic(tmp_path: Path) -> None:
    """kv.users = { primary = dynamodb, replicas = [firestore] } on an AWS target: the target's
    users cost is DynamoDB's plus a Firestore copy and the transfer between the clouds."""
    name = f"replicated_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(f'import overcast\napp = overcast.App("{name}")\nusers = app.kv("users")\n')
    (tmp_path / "overcast.toml").write_text(
        f'[app]\nentry = "{name}:app"\n[targets.multi]\ncloud = "aws"\n'
        'kv.users = { primary = "dynamodb://users", replicas = ["firestore://users"] }\n'
    )
    (tmp_path / "profile.toml").write_text(
        "[workload]\nrequests = 10000000\n[resources.users]\nget = 1\nput = 0.2\nitem_bytes = 2000\n"
    )
    args = ["cost", str(tmp_path), "-t", "multi", "--profile", str(tmp_path / "profile.toml"), "--json"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    users = found["target"]["resources"]["users"]
    alone = next(c for c in found["clouds"] if c["cloud"] == "aws")["resources"]["users"]
    assert users["scheme"] == "dynamodb" and users["total"] > alone["total"]
    labels = " ".join(item["label"] for item in users["items"])
    assert "replica gcp" in labels and "replication aws→gcp" in labels, labels


def test_prices_not_confirmed_against_their_source_are_marked(tmp_path: Path) -> None:
    """A figure whose source could not be confirmed (``"confirmed": false`` in its price file)
    is marked in the table, named under it, and flagged in the JSON."""
    app = _project(tmp_path / "app")
    args = ["cost", str(app), "--profile", str(app / "profile.toml"), "-t", "aws"]
    result = runner.invoke(cli, [*args, "--lines"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    footnote = next(line for line in result.stdout.splitlines() if "not confirmed against their source" in line)
    assert "dynamodb.wru" in footnote and "dynamodb.rru" in footnote
    assert "lambda.requests" not in footnote  # read from AWS's own page
    assert any("wru *" in line for line in result.stdout.splitlines())
    items = json.loads(runner.invoke(cli, [*args, "--json"]).stdout)["target"]
    users = {i["label"]: i["confirmed"] for i in items["resources"]["users"]["items"]}
    compute = {i["label"]: i["confirmed"] for i in items["compute"]}
    assert users["wru"] is False and compute["requests"] is True


def test_every_price_quoted_second_hand_is_marked_unconfirmed() -> None:
    """The price files' notes and flags agree: a figure quoted by a third party, or noted as
    not confirmed, carries ``"confirmed": false``; one read from its own page does not."""
    root = Path(__file__).resolve().parents[2] / "src" / "overcast" / "providers"
    checked = 0
    for path in root.glob("*/prices-*.json"):
        for region, table in json.loads(path.read_text())["regions"].items():
            for key, entry in table.items():
                note = entry.get("note", "")
                second_hand = any(s in note for s in ("not confirmed", "quoted", "rate as in https"))
                assert entry.get("confirmed", True) is not second_hand, f"{path.name} {region} {key}: {note}"
                checked += 1
    assert checked > 40


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--requests", "-5"], "requests: must be above 0, got -5"),
        (["--memory-mb", "0"], "memory_mb: must be above 0"),
    ],
)
def test_bad_flags_name_the_figure(tmp_path: Path, extra: list[str], message: str) -> None:
    app = _project(tmp_path / "app")
    result = runner.invoke(cli, ["cost", str(app), "--profile", str(app / "profile.toml"), *extra])
    assert result.exit_code == 1 and message in result.output, result.output


def test_an_unknown_region_in_the_profile_is_named(tmp_path: Path) -> None:
    app = _project(tmp_path / "app", PROFILE + '\n[regions]\nazure = "atlantis"\n')
    result = runner.invoke(cli, ["cost", str(app), "--profile", str(app / "profile.toml")], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "unknown region 'atlantis' for azure" in result.output and "eastus" in result.output


def test_a_yaml_profile_is_the_same_workload_as_the_toml_one(tmp_path: Path) -> None:
    app = _project(tmp_path / "app")
    (app / "profile.yaml").write_text(
        "workload:\n  requests: 1000000\n  duration_ms: 80\n  memory_mb: 256\n"
        "resources:\n  users: {get: 1, put: 0.2, item_bytes: 800, stored_gb: 3}\n"
        "  signups: {publish: 0.05, item_bytes: 400}\n"
    )
    toml = runner.invoke(cli, ["cost", str(app), "--profile", str(app / "profile.toml"), "--json"])
    yaml = runner.invoke(cli, ["cost", str(app), "--profile", str(app / "profile.yaml"), "--json"])
    assert toml.exit_code == 0 and yaml.exit_code == 0, yaml.output
    assert json.loads(yaml.stdout) == json.loads(toml.stdout)
    (app / "bad.yml").write_text("workload: [1, 2\n")
    bad = runner.invoke(cli, ["cost", str(app), "--profile", str(app / "bad.yml")])
    assert bad.exit_code == 1 and "not valid YAML" in bad.output
    (app / "list.yml").write_text("- requests: 5\n")
    listed = runner.invoke(cli, ["cost", str(app), "--profile", str(app / "list.yml")])
    assert listed.exit_code == 1 and "expected a mapping of tables" in listed.output


def test_a_target_spread_over_two_clouds_counts_the_transfer_between_them(tmp_path: Path) -> None:
    """A target whose compute is on AWS and whose table is Firestore: the table is priced on
    Google Cloud with the written bytes leaving AWS and the read bytes leaving Google Cloud."""
    name = f"spread_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(f'import overcast\napp = overcast.App("{name}")\nusers = app.kv("users")\n')
    (tmp_path / "overcast.toml").write_text(
        f'[app]\nentry = "{name}:app"\n[targets.spread]\ncloud = "aws"\nkv.users = "firestore://users"\n'
    )
    (tmp_path / "profile.toml").write_text(
        "[workload]\nrequests = 10000000\n[resources.users]\nget = 1\nput = 0.5\nitem_bytes = 2048\n"
    )
    args = ["cost", str(tmp_path), "-t", "spread", "--profile", str(tmp_path / "profile.toml"), "--json"]
    result = runner.invoke(cli, [*args, "--no-free-tier"])
    assert result.exit_code == 0, result.output
    users = json.loads(result.stdout)["target"]["resources"]["users"]
    assert (users["service"], users["cloud"]) == ("Firestore", "gcp")
    transfer = {i["label"]: i for i in users["items"] if i["label"].startswith("transfer")}
    gib = 2**30
    assert transfer["transfer aws→gcp"]["quantity"] == pytest.approx(10_000_000 * 0.5 * 2048 / gib)
    assert transfer["transfer gcp→aws"]["quantity"] == pytest.approx(10_000_000 * 2048 / gib)
    assert transfer["transfer aws→gcp"]["rate"] == 0.09 and transfer["transfer gcp→aws"]["rate"] == 0.12
