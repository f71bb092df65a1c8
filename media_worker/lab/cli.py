"""``voicemail lab ...``: the whole product on this machine, for a demo and for phones."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from media_worker.lab.layout import DOMAIN, USERS, Lab, Ports

LAB_EPILOG = f"""\
The lab runs on loopback: Kamailio (the KEMI home proxy) on 127.0.0.1:5060 UDP and TCP
for the SIP domain {DOMAIN}, rtpengine (control 127.0.0.1:2223), a media worker of
two processes (127.0.0.1:5080 and 5081), an SMTP catcher (127.0.0.1:2525) that saves
every mail as a .eml file, the HTTP API and web page (`voicemail api`,
http://127.0.0.1:8080/) and a webhook catcher (127.0.0.1:8090) that saves every
signed delivery as a .json file.
Users: {", ".join(f"{u} (password {p}, mode {m})" for u, (p, m) in USERS.items())};
each one's email is <user>@{DOMAIN}. Dial 1000 for the voicebox, 1001 to record a
greeting.

actions:
  up       create the database, users and prompts, start what is not running, and
           return once every part answers (running it twice is harmless)
  down     stop every part by the PID in its file
  status   show each part, its PID and whether it answers
  demo     alice leaves bob a spoken message, bob listens on 1000; prints the email,
           bob's message list fetched through the API, the web page's URL and where
           the recordings are
  run P    run one part (smtp, webhooks, rtpengine, worker1, kamailio, api) in the
           foreground, as the containers do
  prepare [P]  write the files a part needs (every part's without P: the cfg, the
           database with the users, the prompts) and start nothing

files (under --dir):
  spool/  messages (SEMS layout)   mail/  received emails   log/  one log per part
  webhooks/  one <delivery-id>.json per webhook delivery (headers and body)
  run/    PID files, Kamailio's control socket   kamailio/  the cfg Kamailio runs
  worker1.yaml  the worker's configuration, with the api: and webhooks: sections
  secret  the proxy<->worker signing secret (VM_SECRET and the workers' sip.secret),
          made on the first run and kept
  webhook-secret  the secret the worker signs webhooks with and the catcher checks

examples:
  voicemail lab up && voicemail lab demo
  voicemail lab status
  curl -u bob@lab.example:bob-pw http://127.0.0.1:8080/api/v1/mailboxes/lab.example/bob/messages
  voicemail lab prepare kamailio --dir /tmp/lab && kamailio -c -f /tmp/lab/kamailio/kamailio.cfg
  kamcmd -s unix:var/lab/run/kamailio_ctl ul.dump

exit status:
  0 done, 1 a part did not start (its log is named), 2 usage error"""


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = subparsers.add_parser(
        "lab",
        help="run the whole product on this machine, with a demo",
        description="Bring up, inspect and stop the lab, and run its demo.",
        epilog=LAB_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lab.add_argument("action", choices=["up", "down", "status", "demo", "run", "prepare"])
    lab.add_argument(
        "part",
        nargs="?",
        help="with run and prepare: smtp, webhooks, rtpengine, worker1, kamailio or api",
    )
    lab.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("VOICEMAIL_LAB", "var/lab")),
        help="the lab's directory (default: $VOICEMAIL_LAB, else var/lab in the current "
        "directory: `make lab` runs in the source tree)",
    )
    defaults = Ports()
    ports = lab.add_argument_group("ports (to run a second lab beside the first)")
    ports.add_argument("--sip-port", type=int, default=defaults.sip)
    ports.add_argument(
        "--worker-port",
        type=int,
        default=defaults.worker,
        help="the worker's first process; the second takes the next port",
    )
    ports.add_argument("--rtpengine-port", type=int, default=defaults.rtpengine_ng)
    ports.add_argument("--smtp-port", type=int, default=defaults.smtp)
    ports.add_argument(
        "--api-port", type=int, default=defaults.api, help="the HTTP API and the web page"
    )
    ports.add_argument("--webhook-port", type=int, default=defaults.webhooks)
    ports.add_argument(
        "--media-base",
        type=int,
        default=defaults.worker_media[0],
        help="first of 2,000 RTP ports: the worker's thousand, then rtpengine's",
    )
    lab.set_defaults(handler=_run_lab)


def lab_from(args: argparse.Namespace) -> Lab:
    base = args.media_base
    return Lab(
        root=args.dir.resolve(),
        ports=Ports(
            sip=args.sip_port,
            worker=args.worker_port,
            rtpengine_ng=args.rtpengine_port,
            smtp=args.smtp_port,
            api=args.api_port,
            webhooks=args.webhook_port,
            worker_media=(base, base + 999),
            rtpengine_media=(base + 1000, base + 1999),
        ),
    )


def _say(text: str) -> None:
    print(text, flush=True)


def _run_lab(args: argparse.Namespace) -> int:
    from media_worker.lab.control import Controller, LabError

    lab = lab_from(args)
    control = Controller(lab)
    try:
        if args.action == "up":
            control.up(_say)
            _say(f"lab is up: SIP domain {DOMAIN} at {lab.host}:{lab.ports.sip}")
            _say(f"web page: {lab.api_url}/ (sign in as bob@{DOMAIN}, password {USERS['bob'][0]})")
        elif args.action == "down":
            control.down(_say)
        elif args.action == "status":
            rows = control.status()
            for part, pid, answers in rows:
                state = "answers" if answers else "does not answer"
                _say(f"{part:10} {'pid ' + str(pid) if pid else 'not running':16} {state}")
            return 0 if all(answers for _, _, answers in rows) else 1
        elif args.action == "demo":
            return _demo(control, lab)
        elif args.action == "prepare":
            if args.part is not None and args.part not in lab.commands():
                parts = ", ".join(lab.commands())
                print(f"voicemail lab prepare: name a part: {parts}", file=sys.stderr)
                return 2
            control.prepare(_say, args.part)
            _say(f"lab files written under {lab.root}")
        else:
            return _run_part(control, lab, args.part)
    except LabError as exc:
        print(f"voicemail lab: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo(control: object, lab: Lab) -> int:
    from media_worker.lab.control import Controller
    from media_worker.lab.demo import DemoError, run_demo

    assert isinstance(control, Controller)
    down = [part for part, _, answers in control.status() if not answers]
    if down:
        print(f"voicemail lab: not answering: {', '.join(down)}; run `voicemail lab up`")
        return 1
    try:
        run_demo(lab, _say)
    except (DemoError, AssertionError) as exc:
        print(f"voicemail lab demo: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_part(control: object, lab: Lab, part: str | None) -> int:
    from media_worker.lab.control import Controller

    assert isinstance(control, Controller)
    commands = lab.commands()
    if part not in commands:
        print(f"voicemail lab run: name a part: {', '.join(commands)}", file=sys.stderr)
        return 2
    control.prepare(_say, part)
    command = lab.command(part)
    os.execvp(command[0], command)  # noqa: S606 - the part replaces this process
