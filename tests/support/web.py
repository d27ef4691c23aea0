"""Plain HTTP to the bot's own server (its webhook, /healthz, /metrics), with the standard
library: from sync tests directly, from async tests through ``asyncio.to_thread`` (the bot's
server may be serving on the test's own event loop)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    """A TCP port nothing listens on now (for WEBHOOK_PORT / METRICS_PORT)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One plain HTTP request; the status and body whatever the status."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    """GET /healthz: the status and the JSON body."""
    status, body = http("GET", f"http://127.0.0.1:{port}/healthz")
    return status, json.loads(body)


def scrape(port: int) -> dict[str, float]:
    """GET /metrics, parsed by prometheus-client: {'name{label="value"}': value} of every
    sample (just 'name' for a sample without labels)."""
    status, body = http("GET", f"http://127.0.0.1:{port}/metrics")
    assert status == 200, status
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples
