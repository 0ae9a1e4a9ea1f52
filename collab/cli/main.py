"""The `collab` command: `serve`, `token`, `migrate`, `reindex`, `backup` and `revoke`.

This is the only module that reads `os.environ`. Configuration errors print one line per bad
value and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import jwt
from aiohttp import web

from collab import __version__
from collab.auth.tokens import Role, mint_token
from collab.cli.admin import add_revoke_parser, run_revoke
from collab.errors import CollabError, ConfigError, StoreError
from collab.observability.logging import configure_logging
from collab.rooms.indexer import CatalogIndexer
from collab.settings import HMAC_ALGORITHMS, OPTIONS, Secret, Settings, load_settings
from collab.settings.email import is_address
from collab.store import create_store
from collab.store.sqlite_backup import SECRET_SUFFIX, backup_sqlite
from collab.web.app import create_app
from collab.web.http.access_log import AccessLogger
from collab.web.http.errors import JsonErrorAppRunner
from collab.web.static import static_root

EXIT_CONFIG = 2
EXIT_FAILURE = 1
DEMO_TOKEN_TTL_S = 24 * 3600
log = logging.getLogger("collab")


def main(argv: Sequence[str] | None = None) -> None:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "revoke":
        # A client of a running server: it needs no server settings.
        sys.exit(run_revoke(args, os.environ))
    try:
        settings, own_secret = _settings_from(args)
        if args.command == "serve":
            code = _serve(settings, demo_links=own_secret)
        elif args.command == "token":
            code = _token(settings, args)
        elif args.command == "reindex":
            code = _reindex(settings, args.workspace)
        elif args.command == "backup":
            code = _backup(settings, Path(args.destination), overwrite=args.force)
        else:
            code = _migrate(settings)
    except ConfigError as error:
        print("collab: invalid configuration:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    sys.exit(code)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collab", description="Real-time collaborative editing server for Yjs documents."
    )
    parser.add_argument("--version", action="version", version=f"collab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the server")
    token = commands.add_parser("token", help="print a JWT signed with the configured key")
    token.add_argument("--sub", required=True, help="user id")
    token.add_argument("--name", help="display name")
    token.add_argument("--email", help="address for email digests (the `email` claim)")
    token.add_argument(
        "--workspace",
        action="append",
        default=[],
        metavar="ID:ROLE",
        help="grant ROLE (owner, editor, viewer) in workspace ID; repeatable",
    )
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument(
        "--kid", help="sign with this key of COLLAB_JWT_KEYS (HS*), named in the header"
    )
    token.add_argument(
        "--private-key",
        help="PEM file for RS*/ES* algorithms (or COLLAB_JWT_PRIVATE_KEY)",
    )
    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    reindex = commands.add_parser(
        "reindex", help="rebuild the notes catalog from the stored documents"
    )
    reindex.add_argument("--workspace", metavar="ID", help="only the notes of this workspace")
    backup = commands.add_parser(
        "backup", help="copy the SQLite database (and its secret file) while servers run"
    )
    backup.add_argument("destination", metavar="FILE", help="the copy to write")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    add_revoke_parser(commands)
    for command in (serve, token, migrate, reindex, backup):
        for option in OPTIONS:
            command.add_argument(
                option.flag, dest=option.field, metavar=option.env, help=option.help
            )
    return parser


def _settings_from(args: argparse.Namespace) -> tuple[Settings, bool]:
    """The settings, and whether the server signs with a secret of its own making (see
    `_with_embedded_secret`)."""
    overrides = {option.field: getattr(args, option.field) for option in OPTIONS}
    settings = load_settings(os.environ, overrides)
    if args.command in ("migrate", "reindex", "backup"):
        return settings, False
    return _with_embedded_secret(settings, create=args.command == "serve")


def _with_embedded_secret(settings: Settings, *, create: bool) -> tuple[Settings, bool]:
    """In embedded mode with no HS256 secret configured, use (or create) one kept beside the
    SQLite file, so `collab token` and `collab serve` agree without any setup.

    Returns the settings and whether the secret is the server's own, with no key of the
    operator's configured: only then may `collab serve` print tokens (its demo links)."""
    if settings.jwt_secret is not None or not set(settings.jwt_algorithms) & HMAC_ALGORITHMS:
        return settings, False
    # Keys by `kid` (COLLAB_JWT_KEYS, COLLAB_JWKS_URL) mean the operator manages keys: no
    # demo tokens then, though the generated secret still verifies tokens without a `kid`.
    own = not settings.jwt_keys and settings.jwks_url is None
    if settings.database_url == "memory://":
        return settings.replace(jwt_secret=Secret(secrets.token_urlsafe(48))), own
    db_path = settings.sqlite_path
    if db_path is None:
        return settings, False
    secret_path = db_path.with_name(db_path.name + SECRET_SUFFIX)
    try:
        if not secret_path.exists():
            if not create:
                raise ConfigError(
                    [
                        f"COLLAB_JWT_SECRET: unset and {secret_path} does not exist yet; run "
                        "`collab serve` once with the same COLLAB_DATABASE_URL, or set the secret"
                    ]
                )
            secret_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
        value = secret_path.read_text().strip()
    except OSError as error:
        raise ConfigError(
            [f"COLLAB_JWT_SECRET: cannot use {secret_path}: {error.strerror}"]
        ) from None
    return settings.replace(jwt_secret=Secret(value)), own


def _token(settings: Settings, args: argparse.Namespace) -> int:
    workspaces: dict[str, Role] = {}
    problems = []
    for grant in args.workspace:
        workspace_id, _, role = grant.partition(":")
        try:
            workspaces[workspace_id] = Role(role or "editor")
        except ValueError:
            problems.append(f"--workspace {grant!r}: role must be owner, editor or viewer")
    if args.ttl <= 0:
        problems.append("--ttl: must be a positive number of seconds")
    if args.email is not None and not is_address(args.email):
        problems.append(f"--email {args.email!r}: expected an address like ann@example.com")
    if problems:
        raise ConfigError(problems)
    private_key_path = args.private_key or os.environ.get("COLLAB_JWT_PRIVATE_KEY")
    key_option = "--private-key" if args.private_key else "COLLAB_JWT_PRIVATE_KEY"
    private_key = None
    if private_key_path:
        try:
            private_key = Path(private_key_path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [f"{key_option} {private_key_path!r}: cannot read it: {exc}"]
            ) from None
    try:
        token = mint_token(
            settings,
            sub=args.sub,
            name=args.name,
            workspaces=workspaces,
            ttl_s=args.ttl,
            private_key=private_key,
            kid=args.kid,
            email=args.email,
        )
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as exc:
        # A file that is no private key of the configured algorithm: PyJWT and cryptography
        # raise these (a public key has no `sign`).
        where = f"{key_option} {private_key_path!r}" if private_key_path else "the signing key"
        raise ConfigError([f"{where}: cannot sign with it: {exc}"]) from None
    print(token)
    return 0


def _migrate(settings: Settings) -> int:
    async def run() -> None:
        store = create_store(settings.database_url)
        await store.open()
        await store.close()

    try:
        asyncio.run(run())
    except StoreError as error:
        print(f"collab: migration failed: {error}", file=sys.stderr)
        return EXIT_FAILURE
    print("collab: database schema is up to date")
    return 0


def _reindex(settings: Settings, workspace_id: str | None) -> int:
    """Recompute the catalog entry of every stored note (of one workspace): safe beside
    running servers, whose rows of notes being edited are newer and are kept."""

    async def run() -> int:
        store = create_store(settings.database_url)
        await store.open()
        try:
            indexer = CatalogIndexer(store, store, interval_s=0, on_indexed=lambda *_: None)
            return await indexer.catch_up(workspace_id=workspace_id, everything=True)
        finally:
            await store.close()

    try:
        written = asyncio.run(run())
    except StoreError as error:
        print(f"collab: reindexing failed: {error}", file=sys.stderr)
        return EXIT_FAILURE
    scope = f"workspace {workspace_id!r}" if workspace_id else "every workspace"
    print(f"collab: reindexed {written} notes of {scope}")
    return 0


def _backup(settings: Settings, destination: Path, *, overwrite: bool) -> int:
    source = settings.sqlite_path
    if source is None:
        where = settings.database_url.split(":", 1)[0]
        advice = (
            "memory:// keeps nothing to back up"
            if settings.database_url == "memory://"
            else "back PostgreSQL up with its own tools, e.g. "
            'pg_dump --format=custom --file=collab.dump "$COLLAB_DATABASE_URL"'
        )
        print(f"collab: backup copies a SQLite database, not {where}: {advice}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        result = backup_sqlite(source, destination, overwrite=overwrite)
    except StoreError as error:
        print(f"collab: {error}", file=sys.stderr)
        return EXIT_FAILURE
    secret = f" and {result.path}{SECRET_SUFFIX}" if result.secret_copied else ""
    print(
        f"collab: backed up {source} to {result.path}{secret} "
        f"({result.size_bytes / 2**20:.1f} MiB, schema version {result.schema_version})"
    )
    return 0


def _serve(settings: Settings, *, demo_links: bool) -> int:
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        try:
            runner.run(_run_until_signal(app, settings, demo_links=demo_links))
        except ConfigError:
            raise  # found at start (a webhook secret the keys cannot read): exit status 2
        except (CollabError, OSError) as error:
            print(f"collab: cannot start: {error}", file=sys.stderr)
            return EXIT_FAILURE
    return 0


async def _run_until_signal(app: web.Application, settings: Settings, *, demo_links: bool) -> None:
    runner = JsonErrorAppRunner(
        app,
        access_log_class=AccessLogger,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout_s,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port, backlog=settings.listen_backlog)
        await site.start()
        _print_banner(settings, runner, demo_links=demo_links)
        await stop.wait()
        log.info("shutting down: closing connections and flushing documents")
    finally:
        try:
            await asyncio.wait_for(runner.cleanup(), settings.shutdown_timeout_s + 5)
        except TimeoutError:
            log.error("shutdown took longer than %.0f s", settings.shutdown_timeout_s + 5)
    log.info("stopped")


def _print_banner(settings: Settings, runner: web.AppRunner, *, demo_links: bool) -> None:
    host, port = runner.addresses[0][:2]
    base = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if settings.sqlite_path is not None:
        store = f"SQLite {settings.sqlite_path}"
    elif settings.database_url == "memory://":
        store = "memory store, nothing is kept"
    else:
        store = "Postgres"
    bus = "Redis bus" if settings.redis_url else "in-process bus"
    lines = [
        f"collab {__version__} listening on http://{base} ({store}, {bus})",
        f"  documents: ws://{base}/ws/docs/{{workspace_id}}/{{note_id}}?token=JWT",
        f"  REST:      http://{base}/api/v1/docs/{{workspace_id}}/{{note_id}}",
        "  get a token (same environment): "
        "collab token --sub alice --name Alice --workspace w1:editor",
    ]
    if demo_links:
        lines += _demo_links(settings, base)
    print("\n".join(lines), flush=True)


def _demo_links(settings: Settings, base: str) -> list[str]:
    """Links that open the browser demo signed in (printed, never logged): open each in its
    own window to collaborate. Only for a server signing with a secret of its own making: an
    operator's key never signs tokens that land in stdout and the logs that collect it."""
    if static_root() is None:
        return []
    lines = ["  open the demo, each link in its own window (tokens valid 24 h):"]
    for sub, name in (("alice", "Alice"), ("bob", "Bob")):
        token = mint_token(
            settings, sub=sub, name=name, workspaces={"w1": Role.EDITOR}, ttl_s=DEMO_TOKEN_TTL_S
        )
        lines.append(f"    {name}: http://{base}/?token={token}#/w1/welcome")
    return lines
