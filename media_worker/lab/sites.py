"""The lab's HTTP parts as the worker's configuration names them: the ``api:`` section
``voicemail api`` reads and the ``webhooks:`` endpoint of the lab's catcher. Used by
``voicemail lab`` (media_worker.lab.layout) and the end-to-end test stacks."""

from __future__ import annotations

from dataclasses import dataclass

WEBHOOK_NAME = "lab-catcher"  # the endpoint's name in the worker's logs and queued jobs
# The events every lab webhook endpoint gets (all of them: the catcher shows each kind).
WEBHOOK_EVENTS = (
    "message.created",
    "message.read",
    "message.unread",
    "message.deleted",
    "greeting.updated",
    "greeting.deleted",
)


@dataclass(frozen=True)
class ApiSite:
    """What the ``api:`` section of a lab's configuration needs: where ``voicemail api``
    listens and the Kamailio database it checks passwords against."""

    host: str
    port: int
    kamailio_db: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def yaml(self) -> str:
        return (
            f"api: {{listen: {self.host}, port: {self.port}, public_url: '{self.url}', "
            f"kamailio_db: '{self.kamailio_db}'}}\n"
        )


@dataclass(frozen=True)
class WebhookSite:
    """One webhook endpoint (the lab's catcher) with its signing secret."""

    url: str
    secret: str

    def yaml(self) -> str:
        events = ", ".join(WEBHOOK_EVENTS)
        return (
            "webhooks:\n"
            "  endpoints:\n"
            f"    - {{name: {WEBHOOK_NAME}, url: '{self.url}', secret: '{self.secret}',\n"
            f"       events: [{events}]}}\n"
        )
