"""``--refresh`` against synthetic answers in each price API's documented format (no network in
tests): the figures a selector finds replace the shipped ones, with the API's address and the
day; what is not found stays as shipped and is said; Google's catalog needs a key."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from test_cost_cli import _project, runner

from overcast.cli import cli
from overcast.cost.refresh import refresh_all, today
from overcast.providers.aws import pricing as aws
from overcast.providers.aws.price_list import OFFER_URL
from overcast.providers.azure import pricing as azure
from overcast.providers.gcp import pricing as gcp
from overcast.providers.gcp.billing_catalog import KEY_ENV
from overcast.resources.registry import load_attribute


@pytest.fixture(autouse=True)
def prices_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "prices"
    monkeypatch.setenv("OVERCAST_PRICES_DIR", str(folder))
    yield folder


def _sku(
    family: str, attributes: dict[str, str], tiers: list[tuple[str, str]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    product = {"productFamily": family, "attributes": attributes}
    dims = {
        f"D{i}": {"beginRange": begin, "pricePerUnit": {"USD": price}, "unit": "x"}
        for i, (begin, price) in enumerate(tiers)
    }
    return product, {"T": {"priceDimensions": dims}}


def synthetic_aws_offers() -> dict[str, dict[str, Any]]:
    """Offer files as the Price List bulk API lays them out: products and OnDemand terms by SKU."""
    skus = {
        "AWSLambda": {
            "REQ": _sku("Serverless", {"group": "AWS-Lambda-Requests"}, [("0", "0.0000002500")]),
            "DUR": _sku(
                "Serverless", {"group": "AWS-Lambda-Duration"}, [("0", "0.0000170000"), ("6000000000", "0.000015")]
            ),
            "ARM": _sku("Serverless", {"group": "AWS-Lambda-Duration-ARM"}, [("0", "0.0000133334")]),
        },
        "AmazonDynamoDB": {
            "W": _sku("Amazon DynamoDB PayPerRequest Throughput", {"group": "DDB-WriteUnits"}, [("0", "0.0000007000")]),
            "R": _sku("Amazon DynamoDB PayPerRequest Throughput", {"group": "DDB-ReadUnits"}, [("0", "0.0000001250")]),
            "S": _sku(
                "Database Storage", {"volumeType": "Amazon DynamoDB - Indexed DataStore"}, [("0", "0"), ("25", "0.26")]
            ),
        },
        "AmazonS3": {  # two SKUs of one group that disagree: no single price
            "T1a": _sku("API Request", {"group": "S3-API-Tier1"}, [("0", "0.000005")]),
            "T1b": _sku("API Request", {"group": "S3-API-Tier1"}, [("0", "0.000006")]),
        },
        "AWSQueueService": {
            "Q": _sku("API Request", {"queueType": "Standard"}, [("0", "0"), ("1000000", "0.00000045")]),
        },
    }
    return {
        code: {
            "products": {s: p for s, (p, _) in table.items()},
            "terms": {"OnDemand": {s: t for s, (_, t) in table.items()}},
        }
        for code, table in skus.items()
    }


def fetcher(answers: dict[str, bytes], asked: list[str]) -> Callable[[str], bytes]:
    def fetch(url: str) -> bytes:
        asked.append(url)
        if url not in answers:
            raise AssertionError(f"unexpected request {url}")
        return answers[url]

    return fetch


def test_aws_prices_come_from_the_price_list_offer_files(prices_dir: Path) -> None:
    offers = synthetic_aws_offers()
    answers = {
        OFFER_URL.format(offer=code, region="us-east-1"): json.dumps(body).encode() for code, body in offers.items()
    }
    asked: list[str] = []
    (done,) = refresh_all([_refresher(aws)], fetch=fetcher(answers, asked))
    assert sorted(asked) == sorted(answers)  # one offer file per service
    assert set(done.updated) == {
        "lambda.requests",
        "lambda.duration",
        "dynamodb.wru",
        "dynamodb.storage",
        "sqs.requests",
    }
    assert any(k.startswith("s3.tier1 (no single match") for k in done.kept)
    assert any(k.startswith("sns.publishes (no selector") for k in done.kept)
    table = aws.PRICING.prices("aws", None)
    assert table.retrieved == today() and done.path == prices_dir / "prices-aws.json"
    assert table["lambda.requests"].rate == pytest.approx(0.25)  # per million
    assert table["lambda.duration"].rate == pytest.approx(0.000017)  # the first paid tier, x86 only
    assert table["dynamodb.wru"].rate == pytest.approx(0.70)
    assert table["dynamodb.storage"].rate == pytest.approx(0.26)  # past the free 25 GB
    assert table["sqs.requests"].rate == pytest.approx(0.45)
    assert table["dynamodb.rru"].rate == pytest.approx(0.125)  # unchanged
    assert table["dynamodb.wru"].source == OFFER_URL.format(offer="AmazonDynamoDB", region="us-east-1")
    assert (
        table["s3.tier1"].rate == pytest.approx(0.005)
        and table["s3.tier1"].source == "https://aws.amazon.com/s3/pricing/"
    )


def synthetic_azure_page(items: list[dict[str, Any]], next_link: str | None = None) -> bytes:
    """A page of the Retail Prices API: Items and NextPageLink."""
    return json.dumps(
        {"BillingCurrency": "USD", "Items": items, "NextPageLink": next_link, "Count": len(items)}
    ).encode()


def _item(service: str, meter: str, price: float, unit: str, tier: float = 0, **more: str) -> dict[str, Any]:
    return {
        "serviceName": service,
        "meterName": meter,
        "retailPrice": price,
        "unitOfMeasure": unit,
        "tierMinimumUnits": tier,
        "armRegionName": "eastus",
        **more,
    }


def test_azure_prices_come_from_the_retail_prices_api() -> None:
    def fetch(url: str) -> bytes:
        query = unquote(url)
        if "meterName eq 'Execution Time'" in query:  # the free grant is a tier of price 0
            return synthetic_azure_page(
                [
                    _item("Functions", "Execution Time", 0, "1 GB Second"),
                    _item("Functions", "Execution Time", 0.000017, "1 GB Second", 400000),
                ]
            )
        if "meterName eq 'Total Executions'" in query:
            if "page=2" in url:
                return synthetic_azure_page([_item("Functions", "Total Executions", 0.0000022, "10", 100000)])
            return synthetic_azure_page([_item("Functions", "Total Executions", 0, "10")], url + "&page=2")
        if "Hot LRS Write Operations" in query:
            return synthetic_azure_page(
                [
                    _item(
                        "Storage",
                        "Hot LRS Write Operations",
                        0.055,
                        "10K",
                        productName="General Block Blob v2",
                        skuName="Hot LRS",
                    )
                ]
            )
        return synthetic_azure_page([])

    (done,) = refresh_all([_refresher(azure)], fetch=fetch)
    assert set(done.updated) == {"functions.gb_seconds", "functions.executions", "blob.writes"}
    table = azure.PRICING.prices("azure", None)
    assert table["functions.gb_seconds"].rate == pytest.approx(0.000017)
    assert table["functions.executions"].rate == pytest.approx(0.22)  # $0.0000022 per 10, per million
    assert table["blob.writes"].rate == pytest.approx(0.055)  # per 10,000
    assert any(k.startswith("keyvault.operations (no single match") for k in done.kept)


def test_google_needs_an_api_key_and_says_so(prices_dir: Path) -> None:
    (done,) = refresh_all([_refresher(gcp)], fetch=fetcher({}, []), env={})
    assert done.data is None and KEY_ENV in (done.skipped or "")
    assert not prices_dir.exists()  # nothing written: the shipped prices stay
    assert gcp.PRICING.prices("gcp", None)["run.cpu"].rate == pytest.approx(0.000024)


def test_google_prices_come_from_the_billing_catalog_with_the_key() -> None:
    def fetch(url: str) -> bytes:
        assert "key=secret-key" in url
        if "152E-C115-5142" in url and "pageToken" not in url:  # the catalog answers in pages
            skus = [
                {
                    "skuId": "4856-B847-F1EB",
                    "description": "CPU Allocation Time (tier 1)",
                    "pricingInfo": [
                        {
                            "pricingExpression": {
                                "usageUnit": "s",
                                "tieredRates": [
                                    {
                                        "startUsageAmount": 0,
                                        "unitPrice": {"currencyCode": "USD", "units": "0", "nanos": 0},
                                    },
                                    {
                                        "startUsageAmount": 180000,
                                        "unitPrice": {"currencyCode": "USD", "units": "0", "nanos": 25000},
                                    },
                                ],
                            }
                        }
                    ],
                }
            ]
            return json.dumps({"skus": skus, "nextPageToken": "p2"}).encode()
        return json.dumps({"skus": []}).encode()

    (done,) = refresh_all([_refresher(gcp)], fetch=fetch, env={KEY_ENV: "secret-key"})
    assert done.updated == ["run.cpu"]
    table = gcp.PRICING.prices("gcp", None)
    assert table["run.cpu"].rate == pytest.approx(0.000025)
    assert "key" not in table["run.cpu"].source  # the key is never written down
    assert any(k.startswith("run.memory (SKU 02A2-9231-36A6 not found") for k in done.kept)


def test_the_command_refreshes_then_prices_with_the_new_figures_fake_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from overcast.cost import refresh as refresh_module

    offers = synthetic_aws_offers()
    answers = {
        OFFER_URL.format(offer=code, region="us-east-1"): json.dumps(body).encode() for code, body in offers.items()
    }

    def fetch(url: str) -> bytes:
        if url in answers:
            return answers[url]
        if url.startswith("https://prices.azure.com/"):
            return synthetic_azure_page([])
        raise AssertionError(url)

    monkeypatch.setattr(refresh_module, "fetch_url", fetch)
    monkeypatch.delenv(KEY_ENV, raising=False)
    app = _project(tmp_path / "app")
    result = runner.invoke(cli, ["cost", str(app), "--requests", "3000000", "--refresh", "--json", "--no-free-tier"])
    assert result.exit_code == 0, result.output
    assert (
        "aws: 5 price(s) changed" in result.stderr
        and f"gcp: not refreshed: the Cloud Billing Catalog API needs an API key: set {KEY_ENV}" in result.stderr
    )
    aws_plan = next(p for p in json.loads(result.stdout)["clouds"] if p["cloud"] == "aws")
    requests = next(i for i in aws_plan["compute"] if i["label"] == "requests")
    assert requests["rate"] == pytest.approx(0.25) and requests["cost"] == pytest.approx(0.75)


def _refresher(family: Any) -> Any:
    """The refresh function a family's pricing names (``module:function``)."""
    return load_attribute(family.PRICING.refresh)
