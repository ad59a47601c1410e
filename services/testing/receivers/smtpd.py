"""An SMTP server for sitewatch's tests, on Debian's python3-aiosmtpd.

It requires STARTTLS (with the certificate the test made) and AUTH (PLAIN or
LOGIN with the given user and password) before it accepts mail, and writes
each message it accepts to DIR as NNNNNN.json: the envelope, whether the
session was encrypted and authenticated, and the message as received. The
test reads the files back. "ready" on stdout says it listens.

  python3 smtpd.py --listen 127.0.0.1:PORT --cert C --key K --user U --password P --dir DIR
"""
import argparse
import itertools
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "data": envelope.content.decode("utf-8", "replace"),
        }
        name = os.path.join(self.directory, "%06d.json" % next(self.numbers))
        with open(name + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name)  # a reader never sees half a file
        return "250 OK stored"


def main():
    p = argparse.ArgumentParser()
    for flag in ("--listen", "--cert", "--key", "--user", "--password", "--dir"):
        p.add_argument(flag, required=True)
    a = p.parse_args()
    host, port = a.listen.rsplit(":", 1)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(a.cert, a.key)

    def authenticate(server, session, envelope, mechanism, data):
        ok = (isinstance(data, LoginPassword)
              and data.login.decode() == a.user and data.password.decode() == a.password)
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        Store(a.dir), hostname=host, port=int(port),
        tls_context=tls, require_starttls=True,
        authenticator=authenticate, auth_required=True, auth_require_tls=True)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    sys.exit(main())
