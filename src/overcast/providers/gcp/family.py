"""The Google Cloud family: Firestore, Cloud Storage, Pub/Sub, Secret Manager and Cloud Run."""

from __future__ import annotations

import os
from typing import Any

from ...resources.registry import Family, NativeMetrics

_m = "overcast.providers.gcp"


def log_fields(level: str, trace_id: str | None, span_id: str | None) -> dict[str, Any]:
    """Cloud Logging's structured fields: severity, and the trace a line belongs to."""
    fields: dict[str, Any] = {"severity": level}
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    if trace_id and project:
        fields["logging.googleapis.com/trace"] = f"projects/{project}/traces/{trace_id}"
        fields["logging.googleapis.com/spanId"] = span_id
    return fields


FAMILY = Family(
    name="gcp",
    cloud="gcp",
    extra="gcp",
    requires=("google.api_core",),
    schemes={
        "kv": {"firestore": f"{_m}.firestore:FirestoreKeyValueStore"},
        "bucket": {"gs": f"{_m}.gcs:GCSBlobStore"},
        "queue": {"pubsub": f"{_m}.pubsub:PubSubQueue"},
        "topic": {"pubsub": f"{_m}.pubsub:PubSubTopic"},
        "secret": {"gsm": f"{_m}.secrets:SecretManagerSecretStore"},
    },
    upstreams={"gs": "gcs", "gsm": "secretmanager"},
    native_metrics=NativeMetrics("gcp_logging"),
    log_fields=f"{_m}.family:log_fields",
    # ``serve`` turns a loaded app into the ASGI app `overcast run` serves; ``serve_factory``
    # is the same for uvicorn's --workers (an import string it calls in each worker).
    runtimes={"serve": f"{_m}.cloud_run:cloud_run_app", "serve_factory": f"{_m}.cloud_run:create_asgi"},
    target_options=("region", "project", "events"),
    semantic_conventions={
        "firestore": {"db.system": "firestore"},
        "pubsub": {"messaging.system": "gcp_pubsub"},
    },
    pricing="overcast.providers.gcp.pricing:PRICING",
)
