"""``hypercare secret rotate``: replace the secret that signs reply addresses.

Why a command: a leaked mailbox or a departing team member means every signed Reply-To they
hold must stop working; rotating the secret does that for all of them at once.  By default
the old secret still verifies for ``[replies] secret_grace_hours`` (mail already in someone's
inbox keeps working for a day); ``--no-grace`` ends it now.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    secret = sub.add_parser("secret", parents=[common], help="the secret that signs reply addresses")
    secret_sub = secret.add_subparsers(dest="secret_command", required=True)
    p = secret_sub.add_parser("rotate", parents=[common],
                              help="new secret; old signed reply addresses stop working after the grace period")
    p.add_argument("--no-grace", action="store_true", help="old signed reply addresses stop working now")
    p.set_defaults(handler=cmd_rotate)


def cmd_rotate(app: Any, args: argparse.Namespace) -> int:
    now = app.clock.now()
    rotated = app.reply_secrets.rotate(now, grace=not args.no_grace)
    app.tokens.reload()
    if args.no_grace:
        print("reply secret rotated; every earlier signed reply address stopped working now", file=app.out)
    else:
        until = rotated.previous_until.astimezone(app.config.hypercare.tz).strftime("%Y-%m-%d %H:%M %Z")
        print(f"reply secret rotated; earlier signed reply addresses keep working until {until} "
              f"(grace {app.config.replies.secret_grace_hours:g} h), new mail is signed with the new secret",
              file=app.out)
    return 0
