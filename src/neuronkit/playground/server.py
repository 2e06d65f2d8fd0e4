"""The playground's web server: a Starlette app served by uvicorn, one page and one WebSocket.

Every request passes ``Guard`` before reaching the app:

- the ``Host`` header must name this machine as the page does (an IP address, ``localhost``, or the ``--host`` name):
  a page on another site whose name was re-pointed at 127.0.0.1 (DNS rebinding) is refused;
- the token (``?token=...``, a random 256-bit value printed with the URL) is required by every request, the page,
  its script and style and the WebSocket included: 403 without it, compared in constant time;
- a WebSocket from a page of another origin (its ``Origin`` header) is refused;
- only GET and HEAD, without a body: anything else is 405 or 413;
- every response carries a Content-Security-Policy allowing only the page's own script, style and WebSocket,
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``.

The WebSocket speaks JSON (``protocol``): the page's commands come in, replies, data and frames go out. A message
larger than ``MAX_MESSAGE`` bytes, not JSON, nested too deeply or not a known command gets an error reply naming what
was wrong; the connection and the server go on.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import socket
import threading
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..io import dumps_json
from . import protocol

STATIC = Path(__file__).with_name("static")
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
MAX_MESSAGE = 64 * 1024  # bytes of one WebSocket message from the page
DEFAULT_PORT = 8765


def new_token() -> str:
    return secrets.token_hex(32)


def _header(scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return v.decode("latin-1")
    return None


def host_name(host: str) -> str:
    """The name part of a ``Host`` header value (``[::1]:8765`` -> ``::1``, ``localhost:80`` -> ``localhost``)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class Guard:
    """ASGI middleware enforcing the rules of the module docstring on every HTTP request and WebSocket."""

    def __init__(self, app, token: str, names=("localhost",)):
        self.app, self.token = app, token
        self.names = {n.lower() for n in names}

    def host_ok(self, host: str | None) -> bool:
        if not host or len(host) > 255:
            return False
        name = host_name(host).lower()
        return _is_ip(name) or name in self.names

    def token_ok(self, scope) -> bool:
        try:
            qs = parse_qs(scope.get("query_string", b"").decode("latin-1"), max_num_fields=64)
        except ValueError:  # more fields than any page of ours sends
            return False
        given = qs.get("token", [""])[0]
        return hmac.compare_digest(given.encode("latin-1", "replace"), self.token.encode())

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = _header(scope, b"host")
        why = None
        if not self.host_ok(host):
            why = "forbidden: unknown Host"
        elif not self.token_ok(scope):
            why = "forbidden: a valid token is required (open the URL printed by neuronkit playground)"
        elif kind == "websocket":
            origin = _header(scope, b"origin")
            if origin is not None and origin.lower() != f"http://{host}".lower():
                why = "forbidden: a WebSocket from another origin"
        if why is not None:
            if kind == "websocket":  # closing before accepting: the handshake is answered 403
                return await send({"type": "websocket.close", "code": 1008})
            return await _respond(scope, receive, send, PlainTextResponse(why, 403))
        if kind == "http":
            if scope["method"] not in ("GET", "HEAD"):
                return await _respond(scope, receive, send, PlainTextResponse("method not allowed", 405))
            length = _header(scope, b"content-length")
            if (length not in (None, "0")) or _header(scope, b"transfer-encoding") is not None:
                return await _respond(scope, receive, send, PlainTextResponse("no request body is accepted", 413))
        return await self.app(scope, receive, _secured(send, host))


def _csp(host: str) -> str:
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://{host}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def security_headers(host: str) -> list:
    return [
        (b"content-security-policy", _csp(host).encode("latin-1")),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cache-control", b"no-store"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]


def _secured(send, host):
    extra = security_headers(host)

    async def wrapped(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


async def _respond(scope, receive, send, response: Response):
    host = _header(scope, b"host") or "127.0.0.1"
    await response(scope, receive, _secured(send, host))


def create_app(session, token: str, names=("localhost",)) -> Guard:
    """The ASGI app of the playground for ``session``, guarded by ``token`` (``names``: the host names accepted
    besides IP addresses)."""
    page = (STATIC / "index.html").read_text(encoding="utf-8").replace("__TOKEN__", token)

    async def index(request):
        return Response(page, media_type="text/html; charset=utf-8")

    async def asset(request):
        name = request.path_params["name"]
        if name not in ASSETS:  # a fixed list: no path from the request ever reaches the file system
            return PlainTextResponse("not found", 404)
        return Response((STATIC / name).read_bytes(), media_type=ASSETS[name])

    async def live(ws: WebSocket):
        await ws.accept()
        await Connection(ws, session).run()

    routes = [Route("/", index), Route("/static/{name}", asset), WebSocketRoute("/ws", live)]
    return Guard(Starlette(routes=routes), token, names)


class Connection:
    """One page's WebSocket: a sender task with the newest data and frame (older frames are dropped, so a slow
    page never slows the training), and the receive loop answering each command."""

    def __init__(self, ws: WebSocket, session):
        self.ws, self.session = ws, session
        self.lock = asyncio.Lock()
        self.slots: dict = {}
        self.ready = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def listener(self, kind: str, text: str) -> None:  # called from the training thread
        self.loop.call_soon_threadsafe(self._deliver, kind, text)

    def _deliver(self, kind, text) -> None:
        self.slots[kind] = text
        self.ready.set()

    async def send(self, text: str) -> None:
        async with self.lock:
            await self.ws.send_text(text)

    async def sender(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            for kind in ("data", "frame", "diagnosis", "trial"):  # the data before the frames drawn on it
                text = self.slots.pop(kind, None)
                if text is not None:
                    try:
                        await self.send(text)
                    except (WebSocketDisconnect, RuntimeError, OSError):  # the page went away: the receive loop ends
                        return

    async def run(self) -> None:
        self.session.add_listener(self.listener)
        task = asyncio.create_task(self.sender())
        try:
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                reply = await protocol.handle(self.session, msg.get("text"), msg.get("bytes"), MAX_MESSAGE)
                await self.send(dumps_json(reply))
        except WebSocketDisconnect:
            pass
        finally:
            self.session.remove_listener(self.listener)
            task.cancel()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    return sock


def make_server(app, sock: socket.socket):
    """A uvicorn server for ``app`` on ``sock``: small request and message limits, no proxy headers."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="warning",
        ws="websockets-sansio",
        ws_max_size=MAX_MESSAGE,
        h11_max_incomplete_event_size=16 * 1024,
        limit_concurrency=64,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        lifespan="off",
    )
    return uvicorn.Server(config)


def url(host: str, port: int, token: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/?token={token}"


class Running:
    """A server running in a background thread (tests, benchmarks): ``url``, ``session``, ``stop()``."""

    def __init__(self, session, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.session, self.token = session, token or new_token()
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.url = url(host, self.port, self.token)
        self.server = make_server(create_app(session, self.token, ("localhost", host)), self.sock)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            threading.Event().wait(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.session.close()
        self.sock.close()
