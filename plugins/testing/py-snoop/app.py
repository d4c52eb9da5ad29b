"""An image policy in Python that tries to reach outside its sandbox and reports what it got.

**It exists only for kubeop's sandbox test. Never deploy it.** CPython's runtime imports
wasi:filesystem and wasi:sockets whatever the plugin does; kubeop links them with no authority
behind them, so each attempt below must fail with Python's ordinary error, raised in the
plugin as its own exception. The image policy denies with `name=outcome` pairs for the test to
read.
"""

import os
import socket

import wit_world
from wit_world.imports import types


def attempt(action):
    """`succeeded`, or the exception's type and message."""
    try:
        action()
        return "succeeded"
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        return f"{type(error).__name__}({error})"


class WitWorld(wit_world.WitWorld):
    def check_image(self, request):
        report = {
            "file": attempt(lambda: open("/etc/passwd").read()),
            "relative": attempt(lambda: open("app.py").read()),
            "listdir": attempt(lambda: os.listdir("/")),
            "write": attempt(lambda: open("/tmp/kubeop-snoop", "w").write("x")),
            "tcp": attempt(
                lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", 5432))
            ),
            "udp": attempt(
                lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("10.0.0.1", 53))
            ),
            # Bytes: a str host would go through the idna codec, which the runtime does not bundle.
            "dns": attempt(lambda: socket.getaddrinfo(b"kubernetes.default.svc", 443)),
            "env": str(len(os.environ)),
        }
        return types.Decision_Deny(" ".join(f"{name}={outcome}" for name, outcome in report.items()))
