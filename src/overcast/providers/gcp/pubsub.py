"""Queues and topics on Pub/Sub: ``pubsub://TOPIC?subscription=S&project=P``.

A topic is a Pub/Sub topic; each of its subscriptions is a queue. A *queue* on Google
Cloud is a topic with one subscription (named like the topic unless the URL option
``subscription`` says otherwise). Workers pull (``receive``); a deployed app gets push
deliveries instead, through :func:`overcast.providers.gcp.cloud_run_app`.

Semantics. ``receive`` is a synchronous ``Pull``; the visibility timeout is the message's
ack deadline (``ModifyAckDeadline``, whole seconds, at most 600); ``nack`` sets the
deadline to its delay (0 redelivers at once); ``ack`` acknowledges. Message ids are
Pub/Sub's ``message_id``, stable across redeliveries. Pub/Sub counts deliveries only on
subscriptions with a dead-letter policy, so every subscription gets one: a dead-letter topic
``SUBSCRIPTION.dead`` (with a subscription of the same name, :meth:`dead_letters`) and
``max_delivery_attempts`` 100, the most Pub/Sub allows. The queue's own limit
(``max_attempts``, 5 by default) is applied on receive: a message delivered more often is
republished to the dead-letter topic with its id in the attribute ``overcast.id`` and acked,
so ``max_attempts`` can be below Pub/Sub's minimum of 5 and a dead letter keeps its id.

Ordering: with the URL option ``ordering_key=K`` messages are published with that key on a
subscription with message ordering on, so they are delivered in order. Pub/Sub has no
per-message delay (``send(delay=...)`` raises ``NotSupported``; schedule with Cloud Tasks)
and counting waiting messages needs Cloud Monitoring (``depth`` is not supported).

Limits: a message is at most 10 MB with its attributes; Overcast checks the JSON body
against 10 MB less 100 KB. Topic and subscription names are 3-255 characters starting
with a letter; subscription names are the topic's name, ``.`` and the encoded name.

Push: with ``push_endpoint=URL`` (the app's ``/_overcast/...`` route, see the Cloud Run
runtime) ``create()`` makes a push subscription instead, signed with an OIDC token for
``push_service_account`` when given (audience: the endpoint). Deploys normally create
push subscriptions; this serves tests and ``overcast provision``.

URL options: ``project``, ``subscription``, ``max_attempts``, ``ordering_key``,
``push_endpoint``, ``push_service_account``.

IAM: ``roles/pubsub.publisher`` on the topic, ``roles/pubsub.subscriber`` on the
subscription; ``roles/pubsub.editor`` for ``create()``. For dead letters, the Pub/Sub
service agent ``service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com`` needs
``roles/pubsub.publisher`` on the dead-letter topic and ``roles/pubsub.subscriber`` on the
subscription.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
import time
from typing import Any, ClassVar

from ...errors import ConfigError, NotSupported, ProviderError
from ...resources.keys import encode_key
from ...resources.queue import Message, Queue, QueueLimits, Topic, decode_body
from ...resources.url import ResourceURL
from ._client import google_error, project_of
from ._retries import DEFAULT_TIMEOUT, count_gapic_retries, deadline

__all__ = ["PubSubQueue", "PubSubTopic", "legal_pubsub_name"]

_NAME = re.compile(r"^(?!goog)[A-Za-z][-A-Za-z0-9_.~+%]{2,254}$")
_ID_ATTRIBUTE = "overcast.id"
_PUBSUB_MAX_ATTEMPTS = 100
_MAX_ACK_DEADLINE = 600

_lock = threading.Lock()
_clients: dict[tuple[int, str, float], Any] = {}


def _client(which: str, seconds: float = DEFAULT_TIMEOUT) -> Any:
    """The publisher or subscriber client of this process (gRPC channels do not survive fork)
    whose calls end within ``seconds``, retries included (calls given a ``timeout`` excepted)."""
    key = (os.getpid(), which, seconds)
    with _lock:
        found = _clients.get(key)
        if found is None:
            from google.cloud import pubsub_v1  # type: ignore[attr-defined]

            if which == "publisher":
                found = pubsub_v1.PublisherClient()
            else:
                found = pubsub_v1.SubscriberClient(transport=_subscriber_transport())
            count_gapic_retries(found, "pubsub", seconds)
            _clients[key] = found
        return found


def _subscriber_transport() -> Any:
    """A channel without gRPC's 4 MB receive limit: one pull may carry ten 10 MB messages."""
    import grpc
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    if emulator:
        channel = grpc.insecure_channel(emulator, options=options)
    else:
        channel = SubscriberGrpcTransport.create_channel("pubsub.googleapis.com", options=options)
    return SubscriberGrpcTransport(channel=channel)


def _check_name(name: str, what: str, resource: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"{resource}: Pub/Sub {what} name {name!r} must be 3-255 letters, digits or -_.~+% "
            "starting with a letter (and not with 'goog')"
        )
    return name


def legal_pubsub_name(name: str) -> str:
    """``name`` as a topic and subscription name Pub/Sub takes (3-255 letters, digits or
    ``-_.~+%``, starting with a letter, not with ``goog`` in any case), with room for ``.dead``:
    itself when it is one; else ``overcast-`` where it must not start as it does, the rest
    cut to fit, then a hash of the whole name (so two names never meet). Deterministic: the
    runtime and a plan derive the same name (an app called ``google-demo`` gets backlogs)."""
    limit = 255 - len(".dead")
    if len(name) <= limit and _NAME.match(name) and name[:4].lower() != "goog":
        return name
    slug = re.sub(r"[^A-Za-z0-9_.~+%-]+", "-", name).strip("-")
    if not slug[:1].isalpha() or slug[:4].lower() == "goog":
        slug = f"overcast-{slug}"
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{slug[: limit - len(digest) - 1].rstrip('-')}-{digest}"


class _PubSub:
    """What the queue and the topic share: names, clients, errors, creating topics."""

    name: str
    location: ResourceURL

    def _setup(self, topic: str) -> None:
        project = project_of(self.location)
        if project is None:
            raise ConfigError(f"{self.name}: no Google Cloud project (URL option project or GOOGLE_CLOUD_PROJECT)")
        self.project = project
        self.topic_id = _check_name(topic, "topic", self.name)
        self.topic_path = f"projects/{project}/topics/{topic}"
        self.ordering_key = self.location.option("ordering_key") or ""
        self.timeout = deadline(self.location)

    def _error(self, exc: BaseException, what: str) -> ProviderError:
        return google_error(exc, f"{self.name}: Pub/Sub {what}", resource=self.name)

    def _ensure_topic(self, path: str) -> None:
        from google.api_core.exceptions import AlreadyExists

        try:
            _client("publisher", self.timeout).create_topic(name=path)
        except AlreadyExists:
            pass
        except Exception as exc:
            raise self._error(exc, f"topic {path}") from exc

    def _publish_raw(self, topic_path: str, data: bytes, attributes: dict[str, str]) -> str:
        message: dict[str, Any] = {"data": data, "attributes": attributes}
        if self.ordering_key:
            message["ordering_key"] = self.ordering_key
        try:
            # the generated client's Publish, one request, not the wrapper's background batching
            from google.pubsub_v1.services.publisher.client import PublisherClient

            response = PublisherClient.publish(
                _client("publisher", self.timeout),
                topic=topic_path,
                messages=[message],  # type: ignore[list-item]
            )
        except Exception as exc:
            raise self._error(exc, f"topic {topic_path}") from exc
        return str(response.message_ids[0])


class PubSubQueue(_PubSub, Queue):
    """One subscription of a Pub/Sub topic, pulled; see the module docstring.

    Capabilities: ``dead_letter``, ``multiprocess``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"dead_letter", "multiprocess"})
    limits: ClassVar[QueueLimits] = QueueLimits(
        max_body_bytes=10_000_000 - 100_000, max_visibility_timeout=float(_MAX_ACK_DEADLINE)
    )
    offload: ClassVar[bool] = True
    #: how a name Overcast derives (a backlog's ``APP-NAME``) is made one Pub/Sub takes
    legal_name = staticmethod(legal_pubsub_name)

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._setup(self.location.host)
        subscription = self.location.option("subscription") or self.topic_id
        self.subscription_id = _check_name(subscription, "subscription", self.name)
        self.subscription_path = f"projects/{self.project}/subscriptions/{subscription}"
        #: 0 for none: a message is never dead-lettered
        self.max_attempts = self.location.option_int(
            "max_attempts", self.default_max_attempts, minimum=0, maximum=_PUBSUB_MAX_ATTEMPTS, resource=self.name
        )
        #: a dead-letter queue reads the original ids back and has no dead letters of its own
        self.is_dead_letters = self.location.option_bool("dead_letters", False, resource=self.name)
        self.dead_id = _check_name(f"{subscription}.dead"[:255], "dead-letter topic", self.name)
        self.dead_path = f"projects/{self.project}/topics/{self.dead_id}"

    # -- life cycle -------------------------------------------------------------------------

    def _create_blocking(self) -> None:
        from google.api_core.exceptions import AlreadyExists

        self._ensure_topic(self.topic_path)
        request: dict[str, Any] = {
            "name": self.subscription_path,
            "topic": self.topic_path,
            "ack_deadline_seconds": int(self.default_visibility_timeout),
            "enable_message_ordering": bool(self.ordering_key),
        }
        push = self.location.option("push_endpoint")
        if push:
            config: dict[str, Any] = {"push_endpoint": push}
            account = self.location.option("push_service_account")
            if account:
                config["oidc_token"] = {"service_account_email": account, "audience": push}
            request["push_config"] = config
        if not self.is_dead_letters:
            self._ensure_topic(self.dead_path)
            self._dead_letters(create=True)
            request["dead_letter_policy"] = {
                "dead_letter_topic": self.dead_path,
                "max_delivery_attempts": _PUBSUB_MAX_ATTEMPTS,
            }
        try:
            _client("subscriber", self.timeout).create_subscription(request=request)
        except AlreadyExists:
            pass
        except Exception as exc:
            raise self._error(exc, f"subscription {self.subscription_path}") from exc

    def _ping_blocking(self) -> None:
        try:
            _client("subscriber", self.timeout).get_subscription(subscription=self.subscription_path)
        except Exception as exc:
            raise self._error(exc, f"subscription {self.subscription_path}") from exc

    def dead_letters(self) -> Queue:
        if self.is_dead_letters:
            raise NotSupported(f"{self.name}: a dead-letter queue has no dead letters of its own", resource=self.name)
        return self._dead_letters(create=False)

    def _dead_letters(self, *, create: bool) -> PubSubQueue:
        url = ResourceURL(
            "pubsub",
            self.dead_id,
            options={"project": self.project, "subscription": self.dead_id, "dead_letters": "1"},
        )
        queue = PubSubQueue(url, name=f"{self.name} (dead letters)")
        if create:
            queue._create_blocking()
        return queue

    # -- messages ---------------------------------------------------------------------------

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        if delay > 0:
            raise NotSupported(
                f"{self.name}: Pub/Sub cannot delay a message; schedule it with Cloud Tasks instead",
                resource=self.name,
            )
        return self._publish_raw(self.topic_path, data, attributes)

    def _receive_blocking(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        from google.api_core.exceptions import DeadlineExceeded

        subscriber = _client("subscriber", self.timeout)
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            request = {"subscription": self.subscription_path, "max_messages": max_messages}
            try:
                # Pull answers when messages are there or after a while; an empty queue costs
                # up to a second even with wait=0 (return_immediately is deprecated)
                response = subscriber.pull(request=request, timeout=max(left, 1.0), retry=None)
                received = list(response.received_messages)
            except DeadlineExceeded:
                received = []
            except Exception as exc:
                raise self._error(exc, f"subscription {self.subscription_path}") from exc
            messages = self._accept(received, visibility_timeout)
            if messages or time.monotonic() >= deadline:
                return messages
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))

    def _accept(self, received: list[Any], visibility_timeout: float) -> list[Message]:
        messages: list[Message] = []
        dead: list[Any] = []
        for item in received:
            attempts = int(item.delivery_attempt or 1)
            if not self.is_dead_letters and self.max_attempts and attempts > self.max_attempts:
                dead.append(item)
                continue
            pubsub = item.message
            attributes = dict(pubsub.attributes)
            message_id = str(pubsub.message_id)
            if self.is_dead_letters:
                message_id = attributes.pop(_ID_ATTRIBUTE, message_id)
                attributes = {k: v for k, v in attributes.items() if not k.startswith("CloudPubSubDeadLetter")}
            messages.append(Message(message_id, decode_body(pubsub.data), attributes, attempts, item.ack_id))
        for item in dead:
            attributes = dict(item.message.attributes)
            attributes[_ID_ATTRIBUTE] = str(item.message.message_id)
            self._publish_raw(self.dead_path, bytes(item.message.data), attributes)
            self._settle([item.ack_id], None)
        seconds = min(math.ceil(visibility_timeout), _MAX_ACK_DEADLINE)
        if messages and seconds != int(self.default_visibility_timeout):
            self._settle([m.receipt for m in messages], seconds)
        return messages

    def _settle(self, ack_ids: list[str], deadline: int | None) -> None:
        subscriber = _client("subscriber", self.timeout)
        try:
            if deadline is None:
                subscriber.acknowledge(subscription=self.subscription_path, ack_ids=ack_ids)
            else:
                subscriber.modify_ack_deadline(
                    subscription=self.subscription_path, ack_ids=ack_ids, ack_deadline_seconds=deadline
                )
        except Exception as exc:
            raise self._error(exc, f"subscription {self.subscription_path}") from exc

    def _ack_blocking(self, message: Message) -> None:
        self._settle([message.receipt], None)

    def _nack_blocking(self, message: Message, delay: float) -> None:
        self._settle([message.receipt], min(math.ceil(delay), _MAX_ACK_DEADLINE))


class PubSubTopic(_PubSub, Topic):
    """A Pub/Sub topic; ``subscription(name)`` is a :class:`PubSubQueue` on it.

    Capabilities: ``dead_letter``, ``multiprocess``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"dead_letter", "multiprocess"})
    limits: ClassVar[QueueLimits] = PubSubQueue.limits
    offload: ClassVar[bool] = True

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._setup(self.location.host)

    def _create_blocking(self) -> None:
        self._ensure_topic(self.topic_path)

    def _ping_blocking(self) -> None:
        try:
            _client("publisher", self.timeout).get_topic(topic=self.topic_path)
        except Exception as exc:
            raise self._error(exc, f"topic {self.topic_path}") from exc

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        return self._publish_raw(self.topic_path, data, attributes)

    def _subscription(self, name: str, max_attempts: int | None) -> Queue:
        options = dict(self.location.options)
        options["project"] = self.project
        options["subscription"] = _check_name(f"{self.topic_id}.{encode_key(name)}", "subscription", self.name)
        if max_attempts is not None:
            options["max_attempts"] = str(max_attempts)
        url = ResourceURL("pubsub", self.topic_id, options=options)
        return PubSubQueue(url, name=f"{self.name}/{name}")
