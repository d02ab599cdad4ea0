"""A real SMTP relay for CMP's notification tests (aiosmtpd): STARTTLS and AUTH when asked,
each message saved as JSON in a directory, or every recipient refused."""

import argparse
import json
import os
import ssl
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--dir", required=True)
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--user")
parser.add_argument("--password")
parser.add_argument("--refuse", action="store_true")
args = parser.parse_args()


class Sink:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if args.refuse:
            return "550 5.7.1 refused by the test relay"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(args.dir, f"{time.time_ns()}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "data": envelope.content.decode("utf-8", "replace"),
                    "authenticated": bool(session.authenticated),
                    "tls": session.ssl is not None,
                },
                f,
            )
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == args.user
        and auth_data.password.decode() == args.password
    )
    # handled=False: the server answers 535 itself.
    return AuthResult(success=ok, handled=False)


options = {}
if args.cert:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    options.update(tls_context=context, require_starttls=True)
if args.user:
    options.update(authenticator=authenticator, auth_require_tls=bool(args.cert))
# A loaded test machine can take longer than the default 5 s to bring the server up.
controller = Controller(
    Sink(), hostname="127.0.0.1", port=args.port, ready_timeout=30, **options
)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
