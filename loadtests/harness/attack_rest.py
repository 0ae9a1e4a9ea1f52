"""The attacks over REST, run by the attacker process (`harness.attacker`).

- d1rest: D1's two updates as two `POST …/updates`, one after the other.
- d5: `d5_requests` `POST …/updates` opened at `d5_open_per_s` (0: all at once) whose body
  trickles in (one byte every `TRICKLE_INTERVAL_S` of a Content-Length never reached), each
  held until the server answers or closes, or the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import aiohttp

from harness.attack_kinds import D1_CLIENTS, at_zero, remaining

BINARY = "application/octet-stream"
TRICKLE_INTERVAL_S = 1.0
TRICKLE_CONTENT_BYTES = 1024 * 1024
CONNECT_TIMEOUT_S = 5.0
CONNECT_CONCURRENCY = 50
MAX_ANSWER_BYTES = 64 * 1024


class RestAttack:
    def __init__(self, config: dict[str, Any], session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self.path = f"/api/v1/docs/{config['workspace']}/{config['note']}/updates"
        self.url = config["http"] + self.path
        self.headers = {"Authorization": f"Bearer {config['token']}", "Content-Type": BINARY}

    async def prepare(self) -> None:
        return None

    async def close(self) -> None:
        return None


class D1Rest(RestAttack):
    async def prepare(self) -> None:
        self.updates = [at_zero(client, self.config["d1_inserts"]) for client in D1_CLIENTS]

    async def run(self, deadline: float) -> dict[str, Any]:
        started = time.monotonic()
        answers = []
        for update in self.updates:
            sent_at = time.monotonic()
            answer: dict[str, Any] = {"bytes": len(update)}
            try:
                timeout = aiohttp.ClientTimeout(total=max(0.1, remaining(deadline)))
                async with self.session.post(
                    self.url, data=update, headers=self.headers, timeout=timeout
                ) as response:
                    answer["status"] = response.status
                    answer["body"] = (await response.text())[:200]
            except (aiohttp.ClientError, TimeoutError) as error:
                answer["status"] = None
                answer["error"] = type(error).__name__
            answer["after_s"] = time.monotonic() - sent_at
            answers.append(answer)
        return {"answers": answers, "done_after_s": time.monotonic() - started}


class _Trickle:
    """One request on its own TCP connection; `status` once the server answered."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status: int | None = None
        self.server_closed = False
        self.answered_after_s: float | None = None
        self.closed_after_s: float | None = None
        self.bytes_sent = 0

    async def hold(self, deadline: float, started: float) -> None:
        """Trickle the body and read the answer until the server closes or `deadline`."""
        trickler = asyncio.create_task(self._trickle(deadline))
        try:
            async with asyncio.timeout(remaining(deadline)):
                answer = await self.reader.read(MAX_ANSWER_BYTES)
                if answer:
                    self.answered_after_s = time.monotonic() - started
                    head = answer.split(b"\r\n", 1)[0].split(b" ", 2)
                    if len(head) >= 2 and head[1].isdigit():
                        self.status = int(head[1])
                while answer:
                    answer = await self.reader.read(MAX_ANSWER_BYTES)
                self.server_closed = True
                self.closed_after_s = time.monotonic() - started
        except (TimeoutError, ConnectionError):
            pass
        finally:
            trickler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trickler
            self.writer.close()

    async def _trickle(self, deadline: float) -> None:
        with contextlib.suppress(ConnectionError):
            while time.monotonic() < deadline and not self.writer.is_closing():
                await asyncio.sleep(min(TRICKLE_INTERVAL_S, remaining(deadline)))
                self.writer.write(b"\x00")
                await self.writer.drain()
                self.bytes_sent += 1


class D5(RestAttack):
    async def run(self, deadline: float) -> dict[str, Any]:
        started = time.monotonic()
        slots = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures: Counter[str] = Counter()
        holds: list[asyncio.Task[None]] = []
        requests: list[_Trickle] = []

        async def start_one() -> None:
            async with slots:
                try:
                    request = await asyncio.wait_for(self._open(), CONNECT_TIMEOUT_S)
                except (OSError, TimeoutError) as error:
                    failures[type(error).__name__] += 1
                    return
            requests.append(request)
            holds.append(asyncio.create_task(request.hold(deadline, started)))

        openers = []
        pace_s = 1 / self.config["d5_open_per_s"] if self.config["d5_open_per_s"] else 0.0
        for index in range(self.config["d5_requests"]):
            delay_s = started + index * pace_s - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if time.monotonic() >= deadline:
                break
            openers.append(asyncio.create_task(start_one()))
        await asyncio.gather(*openers)
        opened_after_s = time.monotonic() - started
        if holds:
            await asyncio.wait(holds, timeout=remaining(deadline) + CONNECT_TIMEOUT_S)
        statuses = Counter(
            str(request.status) if request.status is not None else "none" for request in requests
        )
        answered = [r.answered_after_s for r in requests if r.answered_after_s is not None]
        # How long the server kept a connection open after answering it.
        lingered = sorted(
            r.closed_after_s - r.answered_after_s
            for r in requests
            if r.closed_after_s is not None and r.answered_after_s is not None
        )
        return {
            "requests": self.config["d5_requests"],
            "opened": len(requests),
            "open_failures": dict(failures),
            "opened_after_s": opened_after_s,
            "statuses": dict(statuses),
            "closed_by_server": sum(request.server_closed for request in requests),
            "first_answer_after_s": min(answered, default=None),
            "last_answer_after_s": max(answered, default=None),
            "closed_after_answer_s_median": lingered[len(lingered) // 2] if lingered else None,
            "held_after_s": time.monotonic() - started,
        }

    async def _open(self) -> _Trickle:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.config["port"])
        head = (
            f"POST {self.path} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.config['port']}\r\n"
            f"Authorization: {self.headers['Authorization']}\r\n"
            f"Content-Type: {BINARY}\r\nContent-Length: {TRICKLE_CONTENT_BYTES}\r\n\r\n"
        )
        writer.write(head.encode() + b"\x00")
        await writer.drain()
        request = _Trickle(reader, writer)
        request.bytes_sent = 1
        return request
