"""``voicemail api --config FILE``: serve the HTTP API and the web page."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

API_EPILOG = """\
Serves the HTTP API (/api/v1, described at /api/v1/openapi.json and /api/docs) and the
web page (/) over the message store the workers use (storage.url), with the settings of
the configuration file's api: section. Users log in with HTTP Basic as user@domain and
their SIP password, checked against Kamailio's subscriber table (api.kamailio_db);
operators with a bearer token whose SHA-256 is listed under api.tokens. Each change it
makes to a mailbox is spooled under data_dir/changes, where the worker's first process
picks it up to move the message-waiting lamp and send webhooks.

The server keeps no state between requests except the failed-login counters: several
may run behind a load balancer (list its address under api.forwarded_allow_ips). It
runs until SIGTERM or SIGINT. With api.tls_certfile and api.tls_keyfile it speaks
HTTPS only.

examples:
  voicemail api --config /etc/voicemail/voicemail.yaml
  voicemail api --check --config voicemail.yaml       (validate and exit)
  curl -u bob@example.com:PASSWORD http://127.0.0.1:8080/api/v1/mailboxes/example.com/bob/messages

exit status:
  0 stopped cleanly (or --check passed), 1 it could not start (the port is taken, a
  TLS key it cannot load), 2 the configuration is invalid or has no api: section"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = subparsers.add_parser(
        "api",
        help="serve the HTTP API and the web page",
        description="Serve the voicemail HTTP API and the visual voicemail web page.",
        epilog=API_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    api.add_argument(
        "--config", metavar="FILE", required=True, help="the worker's YAML file, with api:"
    )
    api.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log (default info: one line per change; debug adds every request)",
    )
    api.add_argument("--check", action="store_true", help="validate the configuration and exit")
    api.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from media_worker.config import ConfigError, load_config

    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        print(f"voicemail: configuration error: {exc}", file=sys.stderr)
        return 2
    if config.api is None:
        print(f"voicemail: configuration error: {args.config} has no api: section", file=sys.stderr)
        return 2
    from media_worker.api.app import create_app

    try:
        app = create_app(config)
    except ConfigError as exc:
        print(f"voicemail: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: configuration is valid")
        return 0
    import uvicorn

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    api = config.api
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=api.listen,
            port=api.port,
            ssl_certfile=api.tls_certfile,
            ssl_keyfile=api.tls_keyfile,
            proxy_headers=bool(api.forwarded_allow_ips),
            forwarded_allow_ips=list(api.forwarded_allow_ips) or None,
            log_config=None,  # our basicConfig above, one format for every line
            access_log=args.log_level == "debug",
            server_header=False,
            timeout_graceful_shutdown=10,
            limit_concurrency=api.max_connections,
        )
    )
    try:
        server.run()
    except (OSError, SystemExit) as exc:
        # uvicorn logs why (the address is in use, say) and exits on a failed start.
        why = exc if isinstance(exc, OSError) else "see the log above"
        print(f"voicemail: cannot serve on {api.listen}:{api.port}: {why}", file=sys.stderr)
        return 1
    return 0 if server.started else 1
