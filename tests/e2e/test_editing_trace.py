"""A real editing trace (~260k keystrokes of a LaTeX paper) through the server and a restart."""

from __future__ import annotations

import signal

from tests.conftest import ProcessFactory
from tests.e2e.conftest import token
from tests.support.node_agent import NodeAgent
from tests.support.trace import is_real_trace, load_trace, trace_path

TXNS_PER_TRANSACTION = 100


async def test_replayed_trace_reaches_another_client_and_survives_a_restart(
    agent: NodeAgent, server_processes: ProcessFactory
) -> None:
    """One stock client replays the trace in chunked transactions; another ends with exactly
    `endContent`; after a restart a fresh client gets the same text."""
    path = trace_path()
    trace = load_trace(path)
    served = await server_processes.start()
    base = f"{served.ws}/ws/docs"
    await agent.connect("reader", base, "w1/paper", token("reader"))
    await agent.wait_synced("reader")
    await agent.connect("writer", base, "w1/paper", token("writer"))
    await agent.wait_synced("writer")

    replay = await agent.replay_trace(
        "writer", path, "text", txns_per_transaction=TXNS_PER_TRANSACTION, timeout_s=300
    )
    assert replay["matches_end_content"], f"writer diverged (real trace: {is_real_trace(path)})"
    await agent.wait_for("reader", {"text": "text"}, {"text": trace.end_content}, timeout_s=120)

    await agent.destroy("writer")
    await agent.destroy("reader")
    assert await served.stop(signal.SIGTERM) == 0

    restarted = await server_processes.start()
    await agent.connect("fresh", f"{restarted.ws}/ws/docs", "w1/paper", token("fresh"))
    await agent.wait_synced("fresh", timeout_s=60)
    await agent.wait_for("fresh", {"text": "text"}, {"text": trace.end_content}, timeout_s=60)
