"""A stand-in for Veraison's verification API, served over real HTTP on 127.0.0.1.

Follows specs/veraison/CLIENT-AND-STANDIN.md 4.4 (from veraison/services@6b88102
verification/api/handler.go): check order, status codes, problem+json errors, 150 s sessions,
strict media-type parsing and normalisation (Go mime.ParseMediaType / FormatMediaType), the
EAR it returns (dotted "draft00" names or the #03 underscore names). It proves wire
compatibility of our client, not Veraison's appraisal rules: its "appraisal" verifies the
EAT with one attester key and compares eat_nonce with the session nonce.

Switches: nonce_encoding ("url-nopad" | "url-pad" | "std-pad"), async_mode, ear_names
("draft00" | "draft03"), fail_next (an HTTP status, or "close" to drop the connection),
delay (seconds before answering an Evidence submission), key_attestation (akpub to add).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from apps.teep.wire import eat
from apps.teep.wire.keys import TeepKey

SESSION_TYPE = "application/vnd.veraison.challenge-response-session+json"
SESSION_TTL = 150
SCHEME = "TEEP_EAT"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TOKEN = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def go_normalize_media_type(value: str) -> str:
    """mime.ParseMediaType (strict: unquoted values must be tokens) + mime.FormatMediaType."""
    head, *params = value.split(";")
    mtype = head.strip().lower()
    main, _, sub = mtype.partition("/")
    if not main or not sub or not set(main) <= _TOKEN or not set(sub) <= _TOKEN:
        raise ValueError("mime: expected slash after first token")
    parsed = {}
    rest = ";".join(params)
    pattern = re.compile(r'\s*;?\s*([^=\s;]+)=("(?:[^"\\]|\\.)*"|[^;\s]*)\s*')
    pos = 0
    while pos < len(rest):
        if rest[pos:].strip() == "":
            break
        match = pattern.match(rest, pos)
        if not match:
            raise ValueError("mime: invalid media parameter")
        name, raw = match.group(1).lower(), match.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        elif not raw or not set(raw) <= _TOKEN:
            raise ValueError("mime: invalid media parameter")
        parsed[name] = raw
        pos = match.end()
    return eat.format_media_type(mtype, parsed)


class StandinState:
    def __init__(self, *, ear_key: TeepKey, attester_key: TeepKey, media_types: list[str]):
        self.ear_key = ear_key
        self.attester_key = attester_key
        self.media_types = [go_normalize_media_type(m) for m in media_types]
        self.sessions: dict[str, dict] = {}
        self.deleted: list[str] = []
        self.requests: list[tuple[str, str, dict]] = []
        self.nonce_encoding = "url-nopad"
        self.async_mode = False
        self.ear_names = "draft00"
        self.fail_next: int | str | None = None
        self.delay = 0.0
        self.key_attestation: str | None = None
        self.lock = threading.Lock()

    def encode_nonce(self, nonce: bytes) -> str:
        if self.nonce_encoding == "std-pad":
            return base64.b64encode(nonce).decode()
        text = base64.urlsafe_b64encode(nonce).decode()
        return text if self.nonce_encoding == "url-pad" else text.rstrip("=")

    def appraise(self, session: dict, evidence: bytes) -> str:
        problem = None
        try:
            claims = eat.verify_eat(evidence, self.attester_key)
            if claims.get(eat.EAT_NONCE) != session["nonce"]:
                problem = "nonce does not match the session nonce"
        except eat.AttestationError as exc:
            problem = f"evidence does not verify: {exc}"
        names = [
            "instance-identity",
            "configuration",
            "executables",
            "file-system",
            "hardware",
            "runtime-opaque",
            "storage-opaque",
            "sourced-data",
        ]
        vector = {n: (99 if problem else 2) for n in names}
        status = "contraindicated" if problem else "affirming"
        dotted = self.ear_names == "draft00"
        appraisal = {
            "ear.status" if dotted else "ear_status": status,
            "ear.trustworthiness-vector" if dotted else "ear_trustworthiness_vector": vector,
        }
        if dotted:
            appraisal["ear.appraisal-policy-id"] = f"policy:{SCHEME}"
        else:
            appraisal["ear_appraisal_policy_ids"] = [f"policy:{SCHEME}"]
        if problem:
            appraisal["ear.veraison.policy-claims" if dotted else "ear_veraison_policy_claims"] = {
                "problem": problem
            }
        if self.key_attestation:
            appraisal["ear.veraison.key-attestation"] = {"akpub": self.key_attestation}
        claims = {
            "eat_profile": eat.EAR_PROFILE_VERAISON if dotted else eat.EAR_PROFILE_03,
            "iat": int(time.time()),
            ("ear.verifier-id" if dotted else "ear_verifier_id"): {
                "build": "fake",
                "developer": "Veraison Project",
            },
            "eat_nonce": base64.urlsafe_b64encode(
                session["nonce"]
            ).decode(),  # padded, like Veraison
            "submods": {SCHEME: appraisal},
        }
        return eat.sign_jwt(claims, self.ear_key)


def make_handler(state: StandinState):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        # --- plumbing -------------------------------------------------------------------
        def _send(
            self,
            status: int,
            body: dict | None = None,
            content_type: str = SESSION_TYPE,
            headers=None,
        ):
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _problem(self, status: int, detail: str, headers=None):
            titles = {
                400: "Bad Request",
                404: "Not Found",
                406: "Not Acceptable",
                415: "Unsupported Media Type",
                500: "Internal Server Error",
                503: "Service Unavailable",
                429: "Too Many Requests",
            }
            self._send(
                status,
                {
                    "type": "about:blank",
                    "title": titles.get(status, "Error"),
                    "status": status,
                    "detail": detail,
                },
                "application/problem+json",
                headers,
            )

        def _accept_ok(self) -> bool:
            accept = self.headers.get("Accept", "*/*")
            return SESSION_TYPE in accept or "*/*" in accept

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _session_json(self, sid: str) -> dict:
            session = state.sessions[sid]
            doc = {
                "status": session["status"],
                "nonce": state.encode_nonce(session["nonce"]),
                "expiry": session["expiry"].isoformat().replace("+00:00", "Z"),
                "accept": state.media_types,
            }
            if session.get("evidence") is not None:
                doc["evidence"] = {
                    "type": session["type"],
                    "value": base64.b64encode(session["evidence"]).decode(),
                }
            if session.get("result"):
                doc["result"] = session["result"]
            return doc

        def _fail_injected(self) -> bool:
            if state.fail_next is None:
                return False
            fail, state.fail_next = state.fail_next, None
            if fail == "close":
                self.close_connection = True
                self.connection.shutdown(2)
                return True
            self._problem(int(fail), "injected failure")
            return True

        # --- routes ---------------------------------------------------------------------
        def do_POST(self):
            parts = urlsplit(self.path)
            body = self._body()
            state.requests.append(("POST", parts.path, dict(self.headers)))
            if self._fail_injected():
                return
            if parts.path == "/challenge-response/v1/newSession":
                return self._new_session(parts.query)
            match = re.fullmatch(r"/challenge-response/v1/session/([^/]+)", parts.path)
            if match:
                return self._submit(match.group(1), body)
            self._problem(404, "no such endpoint")

        def do_GET(self):
            parts = urlsplit(self.path)
            state.requests.append(("GET", parts.path, dict(self.headers)))
            if parts.path == "/.well-known/veraison/verification":
                jwk_key = state.ear_key.to_cose_key()
                jwk = {
                    "kty": "EC",
                    "crv": "P-256",
                    "alg": "ES256",
                    "x": eat.b64url(jwk_key[-2]),
                    "y": eat.b64url(jwk_key[-3]),
                }
                return self._send(
                    200,
                    {
                        "ear-verification-key": jwk,
                        "media-types": state.media_types,
                        "version": "fake",
                        "service-state": "READY",
                        "api-endpoints": {
                            "newChallengeResponseSession": "/challenge-response/v1/newSession"
                        },
                    },
                    "application/vnd.veraison.discovery+json",
                    {"Cache-Control": "max-age=60"},
                )
            match = re.fullmatch(r"/challenge-response/v1/session/([^/]+)", parts.path)
            if not match:
                return self._problem(404, "no such endpoint")
            if not self._accept_ok():
                return self._problem(406, "wrong Accept")
            sid = match.group(1)
            if not _UUID.match(sid):
                return self._problem(400, f"invalid session id ({sid}) in path segment")
            session = state.sessions.get(sid)
            if session is None:
                return self._problem(404, "session not found")
            if session["status"] == "processing":
                session["status"] = "complete"
                session["result"] = state.appraise(session, session["evidence"])
            self._send(200, self._session_json(sid))

        def do_DELETE(self):
            parts = urlsplit(self.path)
            state.requests.append(("DELETE", parts.path, dict(self.headers)))
            match = re.fullmatch(r"/challenge-response/v1/session/([^/]+)", parts.path)
            if not match or not _UUID.match(match.group(1)):
                return self._problem(400, "invalid session id")
            state.sessions.pop(match.group(1), None)
            state.deleted.append(match.group(1))
            self._send(204)

        def _new_session(self, query: str):
            if not self._accept_ok():
                return self._problem(406, "wrong Accept")
            params = parse_qs(query, keep_blank_values=True)
            prefix = "failed handling nonce request: "
            if "nonce" in params and "nonceSize" in params:
                return self._problem(400, prefix + "nonce and nonceSize are mutually exclusive")
            if "nonceSize" in params:
                try:
                    size = int(params["nonceSize"][0])
                    assert 8 <= size <= 64
                except (ValueError, AssertionError):
                    return self._problem(400, prefix + "nonceSize must be in range 8..64")
                nonce = bytes(size)
            elif "nonce" in params:
                text = params["nonce"][0]
                if not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", text):
                    return self._problem(400, prefix + "nonce must be valid base64")
                nonce = base64.urlsafe_b64decode(
                    text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4)
                )
                if not 8 <= len(nonce) <= 64:
                    return self._problem(
                        400, prefix + f"nonce must be between 8 and 64 bytes long; got {len(nonce)}"
                    )
            else:
                nonce = bytes(32)
            sid = str(uuid.uuid4())
            state.sessions[sid] = {
                "status": "waiting",
                "nonce": nonce,
                "expiry": datetime.now(UTC) + timedelta(seconds=SESSION_TTL),
            }
            self._send(201, self._session_json(sid), headers={"Location": f"session/{sid}"})

        def _submit(self, sid: str, body: bytes):
            if not self._accept_ok():
                return self._problem(406, "wrong Accept")
            if not body:
                return self._problem(400, "unable to read evidence from the request body")
            try:
                mtype = go_normalize_media_type(self.headers.get("Content-Type", ""))
            except ValueError as exc:
                return self._problem(400, f"could not check media type with verifier: {exc}")
            if mtype not in state.media_types:
                return self._problem(
                    415,
                    f"no active plugin found for {mtype}",
                    headers={"Accept": ", ".join(state.media_types)},
                )
            if not _UUID.match(sid):
                return self._problem(400, f"invalid session id ({sid}) in path segment")
            session = state.sessions.get(sid)
            if session is None or session["expiry"] < datetime.now(UTC):
                return self._problem(404, "session not found or expired")
            if state.delay:
                time.sleep(state.delay)
            session["evidence"], session["type"] = body, mtype
            if state.async_mode:
                session["status"] = "processing"
                return self._send(202, self._session_json(sid))
            session["status"] = "complete"
            session["result"] = state.appraise(session, body)
            self._send(200, self._session_json(sid))

    return Handler


class VeraisonStandin:
    def __init__(self, **kwargs):
        self.state = StandinState(**kwargs)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
