"""A plain Apache Thrift Ping client, for the interop tests of
kingpin-thrift's server.

    python3 ping_client.py GEN_DIR framed|buffered HOST PORT

GEN_DIR holds the code `thrift --gen py` made from idl/ping.thrift. Makes
every kind of call on one connection with the binary protocol and prints
what came back as one JSON object.
"""

import json
import sys
import time

gen_dir, transport, host, port = sys.argv[1:5]
sys.path.insert(0, gen_dir)

from ping import Ping  # noqa: E402
from ping.ttypes import PingError, PingRequest  # noqa: E402
from thrift.protocol import TBinaryProtocol  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402

SLOW_MILLIS = 50
UNICODE_MESSAGE = "h\u00e9llo \u2603"

transports = {
    "framed": TTransport.TFramedTransport,
    "buffered": TTransport.TBufferedTransport,
}
if transport not in transports:
    sys.exit("the transport is framed or buffered, not %r" % transport)

socket = TSocket.TSocket(host, int(port))
socket.setTimeout(10000)
connection = transports[transport](socket)
client = Ping.Client(TBinaryProtocol.TBinaryProtocol(connection))
connection.open()


def answer(response):
    return {"message": response.message, "server": response.server}


results = {"ping": answer(client.ping(PingRequest(message="hello")))}
try:
    client.ping(PingRequest(message="fail"))
    results["fail"] = {"error": None}
except PingError as e:
    results["fail"] = {"error": e.message}
started = time.monotonic()
slow = client.slow_ping(PingRequest(message="slow"), SLOW_MILLIS)
results["slow_ping"] = dict(
    answer(slow), elapsed_ms=(time.monotonic() - started) * 1000
)
results["unicode"] = answer(client.ping(PingRequest(message=UNICODE_MESSAGE)))
connection.close()
print(json.dumps(results), flush=True)
