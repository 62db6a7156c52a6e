#!/usr/bin/env python3
"""OAuth2 authorization server of mailbot's test mail stack (stdlib only, 127.0.0.1).

Started by ``mailstack.sh start DIR`` before Dovecot, because Dovecot's ``oauth2`` passdb
and the stack's SMTP server both validate XOAUTH2 tokens against its introspection
endpoint.  State is in memory: a restart forgets every client and token.

Public endpoints (what mailbot talks to):

* ``POST /token``: ``grant_type`` = ``refresh_token``, ``authorization_code`` (PKCE S256
  checked) or ``urn:ietf:params:oauth:grant-type:device_code`` (RFC 8628: answers
  ``authorization_pending`` until the client's ``device_polls`` polls were made, then
  grants; ``slow_down`` once first when the client has ``slow_down``).  Errors are RFC 6749
  JSON: ``invalid_grant``, ``invalid_client``, ...
* ``POST /device``: device authorization (``device_code``, ``user_code``,
  ``verification_uri``, ``expires_in``, ``interval``).
* ``GET /authorize``: consent is automatic: redirects at once to ``redirect_uri`` with a
  ``code`` (loopback flow, RFC 8252).
* ``POST /introspect``: RFC 7662: ``{"active": true, "username": ..., "exp": ...}`` or
  ``{"active": false}``.  Dovecot posts ``token=...`` here (introspection_mode = post).

Test control (JSON in, JSON out), each scoped to one ``client_id`` so tests do not meet:

* ``POST /admin/client`` ``{client_id, user, client_secret?, access_ttl?, device_polls?,
  slow_down?, interval?, rotate_refresh?}``: register (or replace) a client; ``user`` is
  whom its sign-ins are for.
* ``POST /admin/grant`` ``{client_id}``: a finished sign-in: returns ``refresh_token``.
* ``POST /admin/revoke`` ``{client_id, what: "access" | "refresh" | "all"}``.
* ``GET /admin/stats?client_id=...``: counts of grants and introspections, and every token
  issued (for "no token in the logs" checks).

Started as ``oauthd.py --port P --pidfile F``; writes the PID file once it listens and
exits on SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

log = logging.getLogger("mailstack.oauthd")

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class Client:
    client_id: str
    user: str
    client_secret: str = ""
    access_ttl: float = 3600.0
    device_polls: int = 2  # polls answered authorization_pending before the grant
    slow_down: bool = False  # answer slow_down once, at the first poll
    interval: float = 0.2
    rotate_refresh: bool = False
    stats: dict[str, int] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)

    def count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1


@dataclass
class Token:
    client_id: str
    user: str
    kind: str  # "access" | "refresh"
    expires: float | None = None
    revoked: bool = False


@dataclass
class Device:
    client_id: str
    polls: int = 0
    slowed: bool = False
    expires: float = 0.0
    done: bool = False


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: dict[str, Client] = {}
        self.tokens: dict[str, Token] = {}
        self.devices: dict[str, Device] = {}
        self.codes: dict[str, tuple[str, str, str]] = {}  # code -> client, challenge, redirect

    def new_token(self, client: Client, kind: str) -> str:
        value = f"{kind[:2]}-{secrets.token_urlsafe(24)}"
        expires = time.time() + client.access_ttl if kind == "access" else None
        self.tokens[value] = Token(client.client_id, client.user, kind, expires)
        client.issued.append(value)
        return value

    def token_response(self, client: Client, refresh: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "access_token": self.new_token(client, "access"),
            "token_type": "Bearer",
            "expires_in": client.access_ttl,
            "scope": "mail",
        }
        if refresh is None or client.rotate_refresh:
            if refresh is not None:
                self.tokens[refresh].revoked = True
            out["refresh_token"] = self.new_token(client, "refresh")
        return out


STATE = State()


class Handler(BaseHTTPRequestHandler):
    server_version = "mailstack-oauthd"

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    # ------------------------------------------------------------------ plumbing

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
              ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, error: str, description: str = "") -> None:
        body = {"error": error}
        if description:
            body["error_description"] = description
        self._send(status, body)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        if self.headers.get("Content-Type", "").startswith("application/json"):
            data = json.loads(raw or "{}")
            return {k: v for k, v in data.items()}
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def _client(self, form: dict[str, str]) -> Client | None:
        """The authenticated client (form fields or HTTP Basic), or None after an error."""
        cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        client = STATE.clients.get(cid)
        if client is None:
            self._error(401, "invalid_client", "unknown client")
            return None
        if client.client_secret and secret != client.client_secret:
            self._error(401, "invalid_client", "bad client secret")
            return None
        return client

    # ------------------------------------------------------------------ routes

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with STATE.lock:
            if url.path == "/authorize":
                self._authorize(query)
            elif url.path == "/admin/stats":
                client = STATE.clients.get(query.get("client_id", ""))
                if client is None:
                    self._error(404, "no such client")
                else:
                    self._send(200, {"stats": client.stats, "issued": client.issued})
            else:
                self._error(404, "not_found")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        form = self._form()
        with STATE.lock:
            route = {
                "/token": self._token,
                "/device": self._device,
                "/introspect": self._introspect,
                "/admin/client": self._admin_client,
                "/admin/grant": self._admin_grant,
                "/admin/revoke": self._admin_revoke,
            }.get(path)
            if route is None:
                self._error(404, "not_found")
            else:
                route(form)

    def _authorize(self, q: dict[str, str]) -> None:
        client = STATE.clients.get(q.get("client_id", ""))
        redirect = q.get("redirect_uri", "")
        if client is None or not redirect.startswith(("http://127.0.0.1:", "http://localhost:")):
            self._error(400, "invalid_request", "unknown client or redirect_uri")
            return
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            self._error(400, "invalid_request", "PKCE S256 required")
            return
        code = secrets.token_urlsafe(16)
        STATE.codes[code] = (client.client_id, q["code_challenge"], redirect)
        client.count("authorize")
        target = redirect + "?" + urlencode({"code": code, "state": q.get("state", "")})
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _token(self, form: dict[str, str]) -> None:
        client = self._client(form)
        if client is None:
            return
        grant = form.get("grant_type", "")
        if grant == "refresh_token":
            client.count("refresh")
            token = STATE.tokens.get(form.get("refresh_token", ""))
            if (token is None or token.revoked or token.kind != "refresh"
                    or token.client_id != client.client_id):
                client.count("refresh_invalid")
                self._error(400, "invalid_grant", "Token has been expired or revoked.")
                return
            self._send(200, STATE.token_response(client, form["refresh_token"]))
        elif grant == DEVICE_GRANT:
            device = STATE.devices.get(form.get("device_code", ""))
            if device is None or device.client_id != client.client_id or device.done:
                self._error(400, "invalid_grant", "unknown device code")
                return
            if time.time() > device.expires:
                self._error(400, "expired_token")
                return
            device.polls += 1
            client.count("device_poll")
            if client.slow_down and not device.slowed:
                device.slowed = True
                self._error(400, "slow_down")
                return
            if device.polls <= client.device_polls:
                self._error(400, "authorization_pending")
                return
            device.done = True
            client.count("device_granted")
            self._send(200, STATE.token_response(client, None))
        elif grant == "authorization_code":
            entry = STATE.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if (entry is None or entry[0] != client.client_id or entry[1] != challenge
                    or entry[2] != form.get("redirect_uri")):
                self._error(400, "invalid_grant", "bad code, verifier or redirect_uri")
                return
            client.count("code_granted")
            self._send(200, STATE.token_response(client, None))
        else:
            self._error(400, "unsupported_grant_type")

    def _device(self, form: dict[str, str]) -> None:
        client = self._client(form)
        if client is None:
            return
        code = secrets.token_urlsafe(24)
        STATE.devices[code] = Device(client.client_id, expires=time.time() + 600)
        client.count("device_start")
        port = getattr(self.server, "server_port", 0)
        self._send(200, {
            "device_code": code,
            "user_code": "WDJB-MJHT",
            "verification_uri": f"http://127.0.0.1:{port}/activate",
            "expires_in": 600,
            "interval": client.interval,
        })

    def _introspect(self, form: dict[str, str]) -> None:
        token = STATE.tokens.get(form.get("token", ""))
        client = STATE.clients.get(token.client_id) if token else None
        now = time.time()
        if (token is None or client is None or token.revoked or token.kind != "access"
                or (token.expires is not None and now > token.expires)):
            if client is not None:
                client.count("introspect_inactive")
            self._send(200, {"active": False})
            return
        client.count("introspect_active")
        self._send(200, {
            "active": True, "username": token.user, "client_id": token.client_id,
            "exp": int(token.expires or 0), "token_type": "Bearer", "scope": "mail",
        })

    def _admin_client(self, form: dict[str, Any]) -> None:
        client = Client(
            client_id=str(form["client_id"]), user=str(form["user"]),
            client_secret=str(form.get("client_secret") or ""),
            access_ttl=float(form.get("access_ttl", 3600)),
            device_polls=int(form.get("device_polls", 2)),
            slow_down=bool(form.get("slow_down", False)),
            interval=float(form.get("interval", 0.2)),
            rotate_refresh=bool(form.get("rotate_refresh", False)),
        )
        STATE.clients[client.client_id] = client
        self._send(200, {"client_id": client.client_id})

    def _admin_grant(self, form: dict[str, Any]) -> None:
        client = STATE.clients[str(form["client_id"])]
        self._send(200, {"refresh_token": STATE.new_token(client, "refresh")})

    def _admin_revoke(self, form: dict[str, Any]) -> None:
        what = str(form.get("what", "all"))
        n = 0
        for token in STATE.tokens.values():
            if token.client_id == form["client_id"] and what in (token.kind, "all"):
                token.revoked = True
                n += 1
        self._send(200, {"revoked": n})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pidfile", required=True, type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tmp = args.pidfile.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(args.pidfile)
    log.info("listening on 127.0.0.1:%d", args.port)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    args.pidfile.unlink(missing_ok=True)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
