"""The Azure family: Table storage, Blob storage, Storage Queues, Key Vault and Azure Functions."""

from __future__ import annotations

from ...resources.registry import Family, NativeMetrics

_m = "overcast.providers.azure"

FAMILY = Family(
    name="azure",
    cloud="azure",
    extra="azure",
    requires=("azure.core",),
    schemes={
        "kv": {"azuretables": f"{_m}.tables:AzureTableKeyValueStore"},
        "bucket": {"azblob": f"{_m}.blob:AzureBlobStore"},
        "queue": {"azqueue": f"{_m}.queues:AzureStorageQueue"},
        "topic": {"azqueue": f"{_m}.queues:AzureStorageTopic"},
        "secret": {"keyvault": f"{_m}.keyvault:KeyVaultSecretStore"},
    },
    upstreams={"azuretables": "azure_tables", "azblob": "azure_blob", "azqueue": "azure_queue"},
    native_metrics=NativeMetrics("azure_monitor", requires_env="APPLICATIONINSIGHTS_CONNECTION_STRING"),
    runtimes={"functions": f"{_m}.functions:function_app"},
    target_options=("region", "resource_group", "subscription", "events"),
    semantic_conventions={
        "azuretables": {"db.system": "azure.tables"},
        "azqueue": {"messaging.system": "azure.storage.queue"},
    },
    pricing="overcast.providers.azure.pricing:PRICING",
)
