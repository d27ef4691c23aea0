"""`python -m bot.healthcheck`: exit 0 when the running bot's /healthz answers 200.

The container's HEALTHCHECK. It asks the port the bot serves /healthz on: WEBHOOK_PORT in
webhook mode (WEBHOOK_URL set), else METRICS_PORT, read from the environment as the bot reads
them. Standard library only: it runs every 30 s and must start fast.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 8  # the bot's own check may ask Telegram (getMe, 5 s at most)


def health_url(env: dict[str, str]) -> str | None:
    if env.get("WEBHOOK_URL"):
        host, port = env.get("WEBHOOK_LISTEN", ""), env.get("WEBHOOK_PORT") or "8443"
    else:
        host, port = env.get("METRICS_LISTEN", ""), env.get("METRICS_PORT", "")
    if not port:
        return None
    if host in ("", "0.0.0.0", "::"):  # listening everywhere: ask over loopback
        host = "127.0.0.1"
    return f"http://{host}:{port}/healthz"


def main() -> int:
    url = health_url(dict(os.environ))
    if url is None:
        print("no health endpoint: set METRICS_PORT (polling) or WEBHOOK_URL", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:  # 503: the body says what is failing
        print(exc.read().decode(errors="replace"), file=sys.stderr)
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
