#!/usr/bin/env python3
"""A real SMTP server for the tests: aiosmtpd on loopback, writing every message it accepts to a
folder as <n>.eml (raw bytes as received), with <n>.json beside it (envelope sender, recipients,
whether the session was TLS and authenticated).

    server.py --port P (0: a free one) --dir DIR [--tls plain|starttls|implicit --cert C --key K]
              [--auth USER:PASSWORD] [--reject-first N]

Prints "ready <port>" on stdout once it accepts connections, then runs until killed.
--reject-first N answers 451 (temporary failure) to the first N messages.
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, folder, reject_first):
        self.folder = folder
        self.reject_left = reject_first
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.reject_left > 0:
                self.reject_left -= 1
                return "451 4.3.0 try again later"
            self.count += 1
            n = self.count
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            # STARTTLS sets session.ssl; implicit TLS shows on the transport.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
        }
        base = os.path.join(self.folder, f"{os.getpid()}-{n:05d}")
        # The .eml last, by rename: a reader that sees it sees the whole message and its meta.
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".tmp", base + ".eml")
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--tls", choices=["plain", "starttls", "implicit"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth")
    p.add_argument("--reject-first", type=int, default=0)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    if a.port == 0:
        # aiosmtpd needs a real port to probe itself with: take a free one.
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            a.port = probe.getsockname()[1]

    context = None
    if a.tls != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)

    kwargs = {"enable_SMTPUTF8": True, "decode_data": False}
    warnings.filterwarnings("ignore")
    # aiosmtpd's own notices (plain AUTH on loopback, deprecations) are noise in test output.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    if a.tls == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            # handled=False: the server itself answers 235 or 535.
            return AuthResult(success=ok, handled=False)

        # AUTH over plain text is allowed only because this listens on loopback.
        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=a.tls != "plain",
        )

    controller = Controller(
        Recorder(a.dir, a.reject_first),
        hostname="127.0.0.1",
        port=a.port,
        ssl_context=context if a.tls == "implicit" else None,
        server_hostname="localhost",
        **kwargs,
    )
    controller.start()
    print(f"ready {controller.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
