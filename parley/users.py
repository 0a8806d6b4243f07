"""``parley users add <username> [--password-stdin] [--attr k=v ...] [--email E]``: create a chat
account (``shared.features.accounts``) in the deployment's Redis, as ``POST /CreateUser`` does.

The password comes from stdin (``--password-stdin``, first line) or a terminal prompt, never from
the command line (it would show in ``ps`` and shell history); it is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from shared.config import Settings
from shared.features import accounts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="users_command", required=True)
    add = sub.add_parser("add", help="create a chat account (for the line front's auth)")
    add.add_argument("username")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    add.add_argument(
        "--attr", action="append", default=[], metavar="K=V", help="an attribute, e.g. nama='Lionel Messi'"
    )
    add.add_argument("--email", default="")


def _attributes(pairs: list[str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"parley users add: --attr wants K=V, got {pair!r}")
        attributes[key] = value
    return attributes


def run(args: argparse.Namespace, settings: Settings) -> int:
    attributes = _attributes(args.attr)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
    from parley.runtime import real_backends

    store, bus = real_backends(settings)

    async def create() -> str:
        await store.start()
        try:
            account = await accounts.create_account(store, args.username, password, args.email, attributes)
        finally:
            await store.close()
            await bus.close()
        return account.user_id

    try:
        user_id = asyncio.run(create())
    except accounts.AccountError as error:
        print(f"parley users add: {error}", file=sys.stderr)
        return 1
    print(user_id)
    return 0
