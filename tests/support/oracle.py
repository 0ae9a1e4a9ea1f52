"""The divergence oracle: every way of reading a document agrees, and nothing is left pending.

A hostile update that one CRDT library applies and another does not, or that is applied in
part, leaves readers of one document disagreeing forever. After any sequence of client
messages, `check_server` reads the document of a running server every way there is and
asserts that each root's content and (where the reader has one) the state vector agree:

- the store, as a restart loads it, applied with pycrdt (after the server flushed);
- the store, applied with yjs (a detached client of the Node agent);
- the REST snapshot in binary form (`Accept: application/octet-stream`), applied with pycrdt;
- the REST snapshot as JSON;
- a fresh stock Yjs client (y-websocket under Node) that connects and syncs;

that the loaded room's clocks (which decide what is a gap and what a duplicate) equal its
document's state vector, and that nothing is pending: the pycrdt document built from the store
has every struct of every stored part in its state vector (yrs keeps structs whose
dependencies are missing out of it, and out of what it encodes), and each yjs document reports
neither pending structs nor pending deletions. `restart_and_check` also closes the server,
starts it again on the same store and bus, and checks that the new one agrees with what the
old one served.

`check_room` is the socket-free variant for a `DocumentRoom`: its document, the replay of what
it persisted and a fresh pycrdt document built from its encoded state agree, the room's clocks
match its document, and every update it accepted was integrated whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from pycrdt import Array, Decoder, Doc, Map, Text, XmlFragment, get_update

from collab.protocol.updates import ClientRange, UpdateShape, read_update
from collab.rooms.document import DocumentRoom
from collab.rooms.snapshot import document_to_json
from collab.web.keys import ROOMS, STORE
from tests.support.node_agent import NodeAgent
from tests.support.waiting import eventually

if TYPE_CHECKING:
    from tests.conftest import RunningServer, StartServer

RootKind = Literal["text", "map", "array", "xml"]
Roots = Mapping[str, RootKind]
StateVector = dict[int, int]

EMPTY_VALUES: dict[str, Any] = {"text": "", "map": {}, "array": [], "xml": ""}
BINARY = "application/octet-stream"
ORACLE_USER = "divergence-oracle"
_client_names = itertools.count(1)


@dataclass(frozen=True)
class View:
    """One reading of a document: each root's content, and its state vector (None for a
    reader that has none, as the JSON snapshot)."""

    source: str
    roots: dict[str, Any]
    state_vector: StateVector | None


class Divergence(AssertionError):
    """Readers of one document disagree, or one of them holds something pending."""


def decode_state_vector(state_vector: bytes) -> StateVector:
    """{client: clock} of a Yjs state vector (`var_uint(n) n * (client clock)`)."""
    decoder = Decoder(state_vector)
    return {
        decoder.read_var_uint(): decoder.read_var_uint() for _ in range(decoder.read_var_uint())
    }


def structs_left_out(updates: Sequence[bytes], state_vector: bytes) -> list[int]:
    """The indexes of `updates` with structs a document at `state_vector` does not have.

    pycrdt's `get_update(update, state_vector)` keeps what the state vector lacks; its struct
    section starts with the number of clients (0: nothing left). (`get_state(update)` will not
    do: like yjs it counts a client's structs only from clock 0, so an update starting later
    shows none.)"""
    return [
        index
        for index, update in enumerate(updates)
        if Decoder(get_update(update, state_vector)).read_var_uint() != 0
    ]


def _plain(value: Any) -> Any:
    """Whole floats as integers (Yjs numbers arrive as floats in pycrdt, as ints in JSON),
    subdocuments (pycrdt `Doc` objects) as their guid."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Doc):
        return {"subdocument": value.guid}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def read_roots(doc: Doc[Any], roots: Roots) -> dict[str, Any]:
    """Each root of `doc` read as its kind, with pycrdt."""
    return {name: _plain(_read_root(doc, name, kind)) for name, kind in roots.items()}


def _read_root(doc: Doc[Any], name: str, kind: RootKind) -> Any:
    if kind == "text":
        return str(doc.get(name, type=Text))
    if kind == "map":
        return doc.get(name, type=Map).to_py()
    if kind == "array":
        return doc.get(name, type=Array).to_py()
    return str(doc.get(name, type=XmlFragment))


def pycrdt_view(source: str, parts: Sequence[bytes], roots: Roots) -> tuple[View, str | None]:
    """The view of a pycrdt document built from `parts` in order, and what it keeps pending
    (None if nothing)."""
    doc: Doc[Any] = Doc()
    for part in parts:
        doc.apply_update(part)
    state = doc.get_state()
    left_out = structs_left_out(parts, state)
    pending = None
    if left_out:
        pending = f"{source}: pycrdt keeps structs of parts {left_out} of {len(parts)} pending"
    return View(source, read_roots(doc, roots), decode_state_vector(state)), pending


def assert_views_agree(views: Sequence[View], findings: Sequence[str] = ()) -> View:
    """Raise `Divergence` unless every view has the same roots and every state vector is
    the same, and there are no `findings` (things pending, clocks that disagree); return the
    first view."""
    reference = views[0]
    vectors = [v.state_vector for v in views if v.state_vector is not None]
    differ = any(vector != vectors[0] for vector in vectors)
    if any(v.roots != reference.roots for v in views) or differ or findings:
        lines = [
            f"  {v.source}: roots {_short(v.roots)}, state vector {v.state_vector}" for v in views
        ]
        lines += [f"  and: {finding}" for finding in findings]
        raise Divergence("readers of one document disagree:\n" + "\n".join(lines))
    return reference


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


# --- a live server ----------------------------------------------------------------------


async def wait_flushed(server: RunningServer) -> None:
    """Wait until every applied update of the server is in its store."""
    rooms = server.app[ROOMS]
    await eventually(lambda: rooms.pending_updates == 0, what="every applied update stored")


async def check_server(
    server: RunningServer, room_id: str, roots: Roots, *, agent: NodeAgent
) -> View:
    """Flush, read `room_id` every way (see the module docstring) and raise `Divergence`
    unless all agree and nothing is pending; return the agreed view. While the room is
    loaded, its clocks (which decide gaps and duplicates) must also equal its document's
    state vector."""
    live = server.app[ROOMS].get(room_id)
    findings: list[str] = []
    if live is not None:
        room = live.room
        state = room.encode_state()
        findings += _clock_mismatches(room, state, decode_state_vector(room.doc.get_state()))
    await wait_flushed(server)
    stored = await server.app[STORE].load(room_id)
    parts = ([stored.snapshot] if stored.snapshot is not None else []) + list(stored.updates)
    store_view, store_pending = pycrdt_view("store (pycrdt)", parts, roots)
    views = [store_view]
    findings += [store_pending] if store_pending else []
    for more_views, more_findings in (
        await _yjs_store_view(agent, server, room_id, parts, roots),
        await _rest_views(server, room_id, roots),
        await _fresh_client_view(agent, server, room_id, roots),
    ):
        views += more_views
        findings += more_findings
    return assert_views_agree(views, findings)


async def restart_and_check(
    server: RunningServer,
    start_server: StartServer,
    room_id: str,
    roots: Roots,
    *,
    agent: NodeAgent,
) -> tuple[RunningServer, View]:
    """`check_server`, then close the server, start it again with the same settings (store
    and bus) and `check_server` the new one, which must serve the same view. Returns the
    new server and its view."""
    before = await check_server(server, room_id, roots, agent=agent)
    await server.close()
    restarted = await start_server(server.settings)
    after = await check_server(restarted, room_id, roots, agent=agent)
    assert_views_agree([before, View("after a restart", after.roots, after.state_vector)])
    return restarted, after


def _reader_token(server: RunningServer, room_id: str) -> str:
    workspace_id = room_id.partition("/")[0]
    return server.token(ORACLE_USER, {workspace_id: "viewer"})


async def _rest_views(
    server: RunningServer, room_id: str, roots: Roots
) -> tuple[list[View], list[str]]:
    headers = {"Authorization": f"Bearer {_reader_token(server, room_id)}"}
    url = f"{server.http}/api/v1/docs/{room_id}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={**headers, "Accept": BINARY}) as response:
            assert response.status == 200, await response.text()
            state = await response.read()
        async with http.get(url, headers={**headers, "Accept": "application/json"}) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
    binary, pending = pycrdt_view("REST snapshot (binary)", [state], roots)
    served = body["roots"]
    as_json = View(
        "REST snapshot (JSON)",
        {name: _plain(served.get(name, EMPTY_VALUES[kind])) for name, kind in roots.items()},
        None,
    )
    return [binary, as_json], [pending] if pending else []


async def _yjs_view(
    agent: NodeAgent, name: str, source: str, roots: Roots
) -> tuple[list[View], list[str]]:
    content = await agent.read(name, dict(roots))
    state_vector = decode_state_vector(await agent.state_vector(name))
    pending = await agent.call("pending", client=name)
    findings = []
    if pending["structs"] is not None or pending["delete_set"]:
        findings.append(f"{source}: yjs keeps pending {pending}")
    return [View(source, _plain(content), state_vector)], findings


async def _yjs_store_view(
    agent: NodeAgent, server: RunningServer, room_id: str, parts: Sequence[bytes], roots: Roots
) -> tuple[list[View], list[str]]:
    name = f"oracle-store-{next(_client_names)}"
    # Never connected: a Y.Doc that only applies the stored parts, in the order a load does.
    await agent.connect(name, f"{server.ws}/ws/docs", room_id, connect=False)
    try:
        for part in parts:
            await agent.apply_update(name, part)
        return await _yjs_view(agent, name, "store (yjs)", roots)
    finally:
        await agent.destroy(name)


async def _fresh_client_view(
    agent: NodeAgent, server: RunningServer, room_id: str, roots: Roots
) -> tuple[list[View], list[str]]:
    name = f"oracle-client-{next(_client_names)}"
    await agent.connect(name, f"{server.ws}/ws/docs", room_id, _reader_token(server, room_id))
    try:
        await agent.wait_synced(name)
        return await _yjs_view(agent, name, "fresh stock Yjs client", roots)
    finally:
        await agent.destroy(name)


# --- a room, without sockets ------------------------------------------------------------


def check_room(
    room: DocumentRoom, persisted: Sequence[bytes], accepted: Sequence[bytes] = ()
) -> None:
    """Raise `Divergence` unless the room's document, the replay of `persisted` (the updates
    of its `Edit` effects, in order) and a fresh pycrdt document built from its encoded state
    hold the same content and state vector; the replay keeps nothing pending; the room's own
    clocks (which decide gaps and duplicates) equal its document's state vector; and every
    update in `accepted` (those the room answered with an `Edit`) is in the room whole."""
    state = room.encode_state()
    replay: Doc[Any] = Doc()
    for update in persisted:
        replay.apply_update(update)
    fresh: Doc[Any] = Doc()
    fresh.apply_update(state)
    room_vector = decode_state_vector(room.doc.get_state())
    replay_vector = decode_state_vector(replay.get_state())
    views = [
        View("room", _plain(document_to_json(state)), room_vector),
        View(
            "replay of what it persisted",
            _plain(document_to_json(replay.get_update())),
            replay_vector,
        ),
        View(
            "fresh doc from its state",
            _plain(document_to_json(fresh.get_update())),
            decode_state_vector(fresh.get_state()),
        ),
    ]
    findings: list[str] = []
    if left_out := structs_left_out(persisted, replay.get_state()):
        findings.append(f"the replay keeps structs of persisted updates {left_out} pending")
    if left_out := structs_left_out(accepted, room.doc.get_state()):
        findings.append(f"accepted updates {left_out} are not all in the room {room_vector}")
    findings += _clock_mismatches(room, state, room_vector)
    assert_views_agree(views, findings)


def _clock_mismatches(room: DocumentRoom, state: bytes, room_vector: StateVector) -> list[str]:
    """Where the room's clocks differ from its document's state vector: it must find its own
    state neither new nor lacking anything, and a struct right after it new."""
    findings = []
    whole = read_update(state)
    if room.carries_new_structs(whole) or room.missing_dependencies(whole) is not None:
        findings.append(f"the room's clocks are behind its document {room_vector}")
    for client, clock in room_vector.items():
        next_struct = UpdateShape({client: ClientRange(clock, clock + 1)}, {}, {}, 0, 1)
        if not room.carries_new_structs(next_struct):
            findings.append(f"the room's clock of client {client} is past {clock}")
    return findings
