"""The catalog benchmark's queries, timed from an HTTP client, and their plans.

Each query is one `GET /api/v1/workspaces/{ws}/notes` query string, sent again and again
over one keep-alive connection, one request at a time: after `warmup` untimed requests, up to
`requests` timed ones or `max_s` seconds, whichever comes first. A paging query follows
`next` for `PAGES` pages per round, each page one timed request. A request's latency runs
from sending it to the last byte of the body read; every answer is checked (status 200,
every note matching the filters, the order of the sort), and a wrong one counts as an error.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg
import orjson
from multidict import MultiDict

from collab.rooms.note_fields import parse_due
from collab.store import postgres_catalog, sqlite_catalog
from collab.store.catalog import Priority, SearchRank, search_terms, search_words
from collab.web.api.note_queries import catalog_query
from harness.catalog_data import Generated

LIST_TARGET_MS = 50.0
SEARCH_TARGET_MS = 100.0
PAGES = 5
REQUEST_TIMEOUT_S = 30.0
SQL_RUNS = 3
PRIORITY_RANK = {p.label: int(p) for p in Priority}


@dataclass(frozen=True)
class Query:
    name: str
    params: tuple[tuple[str, str], ...]
    kind: str  # "list" (list, filter, sort, paging) or "search"
    pages: int = 1

    @property
    def target_ms(self) -> float:
        return SEARCH_TARGET_MS if self.kind == "search" else LIST_TARGET_MS

    @property
    def query_string(self) -> str:
        return urlencode(self.params)


def queries(generated: Generated) -> list[Query]:
    """Every measured query, in the order they run."""
    words = generated.search
    tags = generated.tags
    overdue = generated.now[:10]  # notes due before today (the run's date)
    listed: list[Query] = [
        Query("default list", (), "list"),
        Query("tag (most used)", (("tag", tags[0]),), "list"),
        Query("tag (least used)", (("tag", tags[-1]),), "list"),
        Query("2 tags (most used)", (("tag", tags[0]), ("tag", tags[1])), "list"),
        Query("pinned=true", (("pinned", "true"),), "list"),
        Query("priority=high", (("priority", "high"),), "list"),
        Query("due_before=today", (("due_before", overdue),), "list"),
        Query("assignee", (("assignee", generated.users[7]),), "list"),
    ]
    for sort in ("updated", "created", "due", "priority", "title"):
        for order in ("asc", "desc"):
            listed.append(Query(f"sort={sort} {order}", (("sort", sort), ("order", order)), "list"))
    listed += [
        Query(f"paging: default, {PAGES} pages", (), "list", pages=PAGES),
        Query(
            f"paging: title asc, {PAGES} pages",
            (("sort", "title"), ("order", "asc")),
            "list",
            pages=PAGES,
        ),
    ]
    search = [
        Query(f"q: common word ({words.common})", (("q", words.common),), "search"),
        Query(f"q: rare word ({words.rare})", (("q", words.rare),), "search"),
        Query(
            f"q: 2 words ({words.common} {words.second})",
            (("q", f"{words.common} {words.second}"),),
            "search",
        ),
        Query(f"q: prefix ({words.prefix})", (("q", words.prefix),), "search"),
        Query(
            f"q: common word + tag ({tags[0]})",
            (("q", words.common), ("tag", tags[0])),
            "search",
        ),
        Query(f"q: most frequent word ({words.frequent})", (("q", words.frequent),), "search"),
        Query(
            f"q: most frequent word, {PAGES} pages",
            (("q", words.frequent),),
            "search",
            pages=PAGES,
        ),
        Query(
            "q: most frequent word, sort=updated desc",
            (("q", words.frequent), ("sort", "updated"), ("order", "desc")),
            "search",
        ),
        Query(
            "q: common word, sort=due asc",
            (("q", words.common), ("sort", "due"), ("order", "asc")),
            "search",
        ),
        Query(
            "q: rare word, sort=title asc",
            (("q", words.rare), ("sort", "title"), ("order", "asc")),
            "search",
        ),
    ]
    return listed + search


def matches_key(query: Query) -> str | None:
    """The `SearchWords.matches` entry counting the notes a search query matches."""
    names = {  # the longer of two prefixes first: the first that fits is taken
        "q: common word + tag ": "common+tag",
        "q: common word ": "common",
        "q: rare word ": "rare",
        "q: 2 words ": "common+second",
        "q: prefix ": "prefix",
        "q: most frequent word ": "frequent",
        "q: most frequent word,": "frequent",
        "q: common word,": "common",
        "q: rare word,": "rare",
    }
    return next((key for prefix, key in names.items() if query.name.startswith(prefix)), None)


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest rank: the smallest value with at least `share` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summary(latencies: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies) if latencies else None,
        "mean": statistics.fmean(latencies) if latencies else None,
    }


def check_page(params: tuple[tuple[str, str], ...], notes: list[dict[str, Any]]) -> str | None:
    """What is wrong with a page for its query string, if anything."""
    given = MultiDict(params)
    for note in notes:
        for tag in given.getall("tag", []):
            if tag not in note["tags"]:
                return f"note {note['id']} lacks tag {tag!r}"
        if "pinned" in given and note["pinned"] != (given["pinned"] == "true"):
            return f"note {note['id']} pinned={note['pinned']}"
        if "priority" in given and note["priority"] != given["priority"]:
            return f"note {note['id']} priority={note['priority']}"
        if "assignee" in given and given["assignee"] not in note["assignees"]:
            return f"note {note['id']} not assigned to {given['assignee']!r}"
        if "due_before" in given:
            due = parse_due(note["due"])
            limit = parse_due(given["due_before"])
            if due is None or limit is None or not due[1] < limit[1]:
                return f"note {note['id']} due {note['due']!r}, not before {given['due_before']}"
        if note["trashed_at"] is not None:
            return f"note {note['id']} is in the trash"
    if "q" in given and "sort" not in given:
        ranks = [_search_rank(search_terms(given["q"]), note) for note in notes]
        if ranks != sorted(ranks, reverse=True):
            return f"not in relevance order: ranks {ranks}"
    if "sort" in given:
        keys = [_sort_key(given["sort"], note) for note in notes]
        if given["sort"] == "due":
            # Notes without a due date come last in either order: only dated ones compare.
            dated = [key for key in keys if key is not None]
            if keys[: len(dated)] != dated:
                return "a note without a due date before one with"
            keys = dated
        descending = given.get("order") == "desc"
        if keys != sorted(keys, reverse=descending):
            return f"not in {given['sort']} {given.get('order')} order"
    return None


def _search_rank(terms: list[str], note: dict[str, Any]) -> SearchRank:
    """The `SearchRank` of a found note, from its title and tags (where the rank is decided:
    a found note holds every term somewhere)."""
    title = search_words(note["title"]).split()
    tags = search_words(" ".join(note["tags"])).split()
    in_title = sum(any(word.startswith(term) for word in title) for term in terms)
    in_heading = sum(any(word.startswith(term) for word in title + tags) for term in terms)
    if in_title == len(terms):
        return SearchRank.TITLE
    if in_heading == len(terms):
        return SearchRank.TITLE_OR_TAGS
    return SearchRank.PARTLY if in_heading else SearchRank.BODY


def _sort_key(sort: str, note: dict[str, Any]) -> Any:
    if sort == "due":
        due = parse_due(note["due"])
        return None if due is None else due[1]
    if sort == "priority":
        return PRIORITY_RANK.get(note["priority"], 0)
    if sort == "title":
        return note["title"].casefold()
    return note[f"{sort}_at"]


async def measure(
    base_url: str,
    token: str,
    workspace: str,
    measured: list[Query],
    *,
    requests: int,
    warmup: int,
    max_s: float,
    cpu: Callable[[], dict[str, float]],
    report: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """Time every query; `cpu()` gives the CPU seconds so far of each process measured
    (server, database, client: this process) and of the whole machine ("machine"), `report`
    gets each query's result as it is done."""
    url = f"{base_url}/api/v1/workspaces/{workspace}/notes"
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=1)
    results = []
    async with aiohttp.ClientSession(
        headers=headers, timeout=timeout, connector=connector
    ) as session:

        async def fetch(query: Query, cursor: str | None) -> tuple[float, int, Any]:
            params = list(query.params) + ([("cursor", cursor)] if cursor else [])
            started = time.perf_counter()
            async with session.get(url, params=params) as response:
                body = await response.read()
            elapsed_ms = (time.perf_counter() - started) * 1000
            try:
                decoded = orjson.loads(body)
            except orjson.JSONDecodeError:
                decoded = body[:200].decode(errors="replace")
            return elapsed_ms, response.status, decoded

        async def one_round(query: Query, record: dict[str, Any] | None) -> None:
            cursor = None
            for page in range(query.pages):
                try:
                    elapsed_ms, status, body = await fetch(query, cursor)
                except (aiohttp.ClientError, TimeoutError) as error:
                    if record is not None:
                        _error(record, f"{type(error).__name__}: {error}")
                    return
                if record is None:
                    problem = None
                elif status != 200:
                    problem = f"HTTP {status}: {body}"
                else:
                    problem = check_page(query.params, body["notes"])
                if record is not None:
                    record["latencies_ms"].append(elapsed_ms)
                    record["pages_by_depth"].setdefault(page + 1, []).append(elapsed_ms)
                    if problem is not None:
                        _error(record, problem)
                    else:
                        record["rows"].append(len(body["notes"]))
                if status != 200:
                    return
                cursor = body.get("next")
                if cursor is None:
                    return

        for query in measured:
            for _ in range(warmup):
                await one_round(query, None)
            record: dict[str, Any] = {
                "latencies_ms": [],
                "rows": [],
                "pages_by_depth": {},
                "errors": 0,
                "first_error": None,
            }
            before = cpu()
            started = time.monotonic()
            rounds = 0
            while rounds < requests and time.monotonic() - started < max_s:
                await one_round(query, record)
                rounds += 1
            wall_s = time.monotonic() - started
            after = cpu()
            result = finish(query, record, rounds, wall_s, before, after)
            results.append(result)
            report(result)
    return results


def _error(record: dict[str, Any], problem: str) -> None:
    record["errors"] += 1
    if record["first_error"] is None:
        record["first_error"] = problem[:500]


def finish(
    query: Query,
    record: dict[str, Any],
    rounds: int,
    wall_s: float,
    before: dict[str, float],
    after: dict[str, float],
) -> dict[str, Any]:
    latencies = record["latencies_ms"]
    requests = len(latencies)
    latency = summary(latencies)
    p95 = latency["p95"]
    result: dict[str, Any] = {
        "name": query.name,
        "kind": query.kind,
        "query": query.query_string,
        "pages": query.pages,
        "rounds": rounds,
        "requests": requests,
        "wall_s": wall_s,
        "latency_ms": latency,
        "target_p95_ms": query.target_ms,
        "met": p95 is not None and p95 < query.target_ms and record["errors"] == 0,
        "rows_per_page": statistics.fmean(record["rows"]) if record["rows"] else 0,
        "errors": record["errors"],
        "first_error": record["first_error"],
        "latencies_raw_ms": [round(v, 3) for v in latencies],
    }
    if query.pages > 1:
        result["p50_by_page_ms"] = {
            str(depth): percentile(values, 0.5)
            for depth, values in sorted(record["pages_by_depth"].items())
        }
    spent = {role: seconds - before[role] for role, seconds in after.items()}
    machine = spent.pop("machine", None)
    for role, seconds in spent.items():
        result[f"{role}_cpu_ms_per_request"] = seconds * 1000 / requests if requests else None
    if machine is not None and wall_s > 0:
        # Everything else the machine ran meanwhile, % of one core: well above 0, the
        # latencies are suspect (another process shared the cores).
        result["other_cpu_pct"] = 100 * (machine - sum(spent.values())) / wall_s
    return result


class _Capture:
    """Stands for an aiosqlite connection over a `sqlite3` one: runs and keeps the statements
    `list_notes` runs (a relevance page runs one per rank until the page is full)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self.statements.append((sql, tuple(params)))
        return self.conn.execute(sql, params).fetchall()


async def postgres_plans(
    dsn: str, workspace: str, measured: list[Query]
) -> dict[str, dict[str, Any]]:
    """Per query (its first page): the SQL `PostgresStore.list_notes` runs (each statement,
    until the page is full) and its `EXPLAIN (ANALYZE, BUFFERS)`; the execution time (ms) is
    the server's own, summed over the statements."""
    plans = {}
    conn = await asyncpg.connect(dsn)
    try:
        for query in measured:
            parsed = catalog_query(workspace, MultiDict(query.params))
            statements = postgres_catalog.list_statements(workspace, parsed)
            found, plan, sqls, params, total_ms = 0, [], [], [], 0.0
            for statement in statements:
                rows = await conn.fetch(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, *statement.params
                )
                lines = [str(row[0]) for row in rows]
                plan += lines
                sqls.append(statement.sql)
                params.append([str(p) for p in statement.params])
                total_ms += next(
                    (
                        float(line.split(":")[1].split()[0])
                        for line in lines
                        if line.startswith("Execution Time:")
                    ),
                    0.0,
                )
                found += len(await conn.fetch(statement.sql, *statement.params))
                if found > statement.limit:
                    break
            if sqls:
                plans[query.name] = {
                    "sql": sqls if len(sqls) > 1 else sqls[0],
                    "params": params if len(params) > 1 else params[0],
                    "plan": plan,
                    "ms": total_ms,
                }
    finally:
        await conn.close()
    return plans


def sqlite_plans(path: str, workspace: str, measured: list[Query]) -> dict[str, dict[str, Any]]:
    """Per query (its first page): the SQL `SqliteStore.list_notes` runs (each statement), its
    `EXPLAIN QUERY PLAN`, and how long the statements take in this process (best of
    `SQL_RUNS`, ms)."""
    plans = {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for query in measured:
            capture = _Capture(conn)
            parsed = catalog_query(workspace, MultiDict(query.params))
            asyncio.run(sqlite_catalog.list_notes(capture, workspace, parsed))  # type: ignore[arg-type]
            if not capture.statements:
                continue
            plan = [
                str(row[3])
                for sql, params in capture.statements
                for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            ]
            runs = []
            for _ in range(SQL_RUNS):
                started = time.perf_counter()
                for sql, params in capture.statements:
                    conn.execute(sql, params).fetchall()
                runs.append((time.perf_counter() - started) * 1000)
            sqls = [sql for sql, _ in capture.statements]
            values = [list(params) for _, params in capture.statements]
            plans[query.name] = {
                "sql": sqls if len(sqls) > 1 else sqls[0],
                "params": values if len(values) > 1 else values[0],
                "plan": plan,
                "ms": min(runs),
            }
    finally:
        conn.close()
    return plans
