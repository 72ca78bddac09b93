"""The server's outer ASGI layer: who may send requests, how large and how slowly.

Before any route runs (the REST API, the page's Gradio routes, socket.io):

- the Host header must name this server (a loopback name, or the address it listens on), so
  that a web page elsewhere cannot reach it through DNS rebinding;
- a request that carries an Origin must come from this server's own pages or an origin given
  with --allow_origin, so that a page on another site cannot make it work (browsers send
  `text/plain` and form POSTs across origins without asking);
- a body above the limit is refused with 413 (at once when its Content-Length says so), and
  its memory is reserved on the budget before it is read;
- a client that stops sending its body for `timeout` seconds, or takes ten times that for the
  whole body, gets a 408 and its connection is closed; one that does not finish its request
  headers within `timeout` seconds is disconnected (`header_timeout_protocol`, for uvicorn).

The route then receives the body as one chunk; `ticket(scope)` is the request's share of the
memory budget, released when the response is done.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time

from hifill_tf.app import memory
from hifill_tf.app.errors import error_response

TIMEOUT_SECONDS = 30.0
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_TICKET = "hifill.ticket"
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def ticket(scope):
    """The memory ticket the guard holds for this request (None outside the guard)."""
    return scope.get(_TICKET)


def _hostname(host):
    """'127.0.0.1:7860' -> '127.0.0.1', '[::1]:7860' -> '::1', 'Example.org' -> 'example.org'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def allowed_hosts(listen_host):
    """Names the Host header may carry: loopback names and the listening address; None (any)
    when the server listens on every address (its names cannot be known)."""
    try:
        if ipaddress.ip_address(listen_host).is_unspecified:
            return None
    except ValueError:
        pass
    return frozenset((*LOOPBACK_NAMES, _hostname(listen_host)))


class Guard:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app, budget, max_body, hosts=frozenset(LOOPBACK_NAMES), origins=(),
                 timeout=TIMEOUT_SECONDS):
        self.app = app
        self.budget = budget
        self.max_body = max_body
        self.hosts = hosts
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.timeout = timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal:
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await error_response(*refusal)(scope, receive, send)
        if scope["type"] == "websocket" or scope["method"] not in _BODY_METHODS:
            return await self.app(scope, receive, send)

        ticket_ = self.budget.ticket()
        body = None
        try:
            body = await self._read_body(scope, headers, receive, send, ticket_)
            if body is None:
                return  # answered (413, 408, 503) or the client left
            scope[_TICKET] = ticket_
            await self.app(scope, _replay(body, receive), send)
        finally:
            body = None  # freed before the release gives memory back
            ticket_.release()

    def _refusal(self, scope, headers):
        host = headers.get("host", "")
        if self.hosts is not None and _hostname(host) not in self.hosts:
            return 400, (f"Host {host!r} is not this server's name; open it as "
                         "http://127.0.0.1:PORT/ (or start it with --host that name)")
        origin = headers.get("origin")
        if origin is not None and origin.rstrip("/") not in self.origins:
            scheme = scope.get("scheme", "http")
            scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)  # a page's origin
            if origin != f"{scheme}://{host}" and "*" not in self.origins:
                return 403, (f"requests from pages of {origin} are refused; start the server "
                             f"with --allow_origin {origin} to accept them")
        return None

    async def _read_body(self, scope, headers, receive, send, ticket_):
        length = headers.get("content-length")
        try:
            length = int(length) if length is not None else None
        except ValueError:
            length = -1
        if length is not None and length < 0:
            await error_response(400, "Content-Length is not a number")(scope, receive, send)
            return None
        if length is not None and length > self.max_body:
            await self._too_large(scope, receive, send, length)
            return None
        try:
            # Reserved before reading; a chunked body reserves as it arrives.
            await ticket_.grow_async(memory.BODY_COPIES * (length or 0), "the request body")
        except memory.OverBudget as e:
            await error_response(e.status, str(e))(scope, receive, send)
            return None

        chunks, size = [], 0
        deadline = time.monotonic() + 10 * self.timeout
        while True:
            wait = min(self.timeout, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0))
            except asyncio.TimeoutError:
                await error_response(408, f"the request body did not arrive in time ({size} bytes "
                                     f"came); the server waits {self.timeout:g} s for each part "
                                     f"and {10 * self.timeout:g} s for all",
                                     headers={"Connection": "close"})(scope, receive, send)
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(scope, receive, send, size)
                return None
            if length is None and chunk:
                try:
                    await ticket_.grow_async(memory.BODY_COPIES * len(chunk), "the request body")
                except memory.OverBudget as e:
                    await error_response(e.status, str(e))(scope, receive, send)
                    return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _too_large(self, scope, receive, send, size):
        await error_response(
            413, f"request body of {memory.format_bytes(size)} is above this server's limit of "
            f"{memory.format_bytes(self.max_body)} (set by --memory_budget)",
            headers={"Connection": "close"})(scope, receive, send)


def header_timeout_protocol(seconds):
    """uvicorn's HTTP/1.1 protocol (h11), closing a connection whose request line and headers
    have not all arrived `seconds` after it opened or after its first byte (uvicorn waits
    forever for them: a client could hold connections open by sending nothing)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _timer = None
        _waiting_cycle = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def data_received(self, data):
            if self._timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()
            super().data_received(data)
            if self.cycle is not self._waiting_cycle:  # the headers are in: a new request
                self._disarm()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

        def _arm(self):
            self._waiting_cycle = self.cycle
            self._timer = self.loop.call_later(seconds, self._expire)

        def _disarm(self):
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expire(self):
            self._timer = None
            if self.cycle is self._waiting_cycle and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


def _replay(body, receive):
    """A receive() that gives the read body once, then waits for the client to leave."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
