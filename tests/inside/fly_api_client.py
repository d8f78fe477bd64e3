"""Run inside a machine (by the host's python3, `-I -S`): GET each path given on /.fly/api, print what came back.

Prints one JSON line: a list of [status, body] in the order of the paths.
"""

import http.client
import json
import socket
import sys


class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect("/.fly/api")


def main(paths):
    results = []
    for path in paths:
        connection = UnixConnection("flaps")
        connection.request("GET", path)
        response = connection.getresponse()
        results.append([response.status, json.loads(response.read() or b"null")])
        connection.close()
    print(json.dumps(results))


if sys.argv[1:] and all(arg.startswith("/v1/") for arg in sys.argv[1:]):  # not when the tests list its modules
    main(sys.argv[1:])
