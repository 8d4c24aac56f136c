"""The replaced stack's upstream, after authcache: a Flask-style app behind nginx.

Before, each request of this app verified the JWT, read `user_cache:{id}` from Redis (a
pickled user, 5 minutes), loaded roles and permissions (15 minutes), and cleared those keys
on logout. Now nginx asks authcache-server first (`auth_request`), and this app reads who is
calling from the identity headers it sets — no JWT library, no Redis client, no cache code:

    X-Auth-Request-User          the user id
    X-Auth-Request-Email         the email
    X-Auth-Request-Groups        the roles, comma-separated
    X-Auth-Request-Permissions   the permissions, comma-separated

Only nginx may reach this app (listen on loopback or a private network): the headers are
trusted because nginx overwrites whatever a client sent under those names.

Standard library only, so it runs anywhere (`python3 app.py --port 3000`); with Flask, the
same handlers read `request.headers` and `abort(403)` in the same places.
"""

import argparse
import functools
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROUTES = {}


def route(path):
    """Registers a GET handler for `path`, as Flask's `@app.route` does."""

    def register(handler):
        ROUTES[path] = handler
        return handler

    return register


class Forbidden(Exception):
    """Flask's `abort(403)`."""


def current_user(headers):
    """Who nginx says is calling: the identity headers, as one dict."""

    def names(header):
        return [name for name in headers.get(header, "").split(",") if name]

    return {
        "id": headers.get("X-Auth-Request-User", ""),
        "email": headers.get("X-Auth-Request-Email", ""),
        "roles": names("X-Auth-Request-Groups"),
        "permissions": names("X-Auth-Request-Permissions"),
    }


def require_permission(permission):
    """What the replaced code checked against its cached permissions."""

    def wrap(handler):
        @functools.wraps(handler)
        def checked(user):
            if permission not in user["permissions"]:
                raise Forbidden(permission)
            return handler(user)

        return checked

    return wrap


@route("/me")
def me(user):
    return {"id": user["id"], "email": user["email"], "roles": user["roles"]}


@route("/users")
@require_permission("users:read")
def list_users(user):
    return {"users": ["ada", "bob"], "asked_by": user["id"]}


@route("/users/export")
@require_permission("users:write")
def export_users(user):
    return {"export": "started", "by": user["id"]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        handler = ROUTES.get(self.path.split("?", 1)[0])
        if handler is None:
            return self.answer(404, {"error": "not found"})
        try:
            return self.answer(200, handler(current_user(self.headers)))
        except Forbidden as missing:
            return self.answer(403, {"error": "forbidden", "missing": str(missing)})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
