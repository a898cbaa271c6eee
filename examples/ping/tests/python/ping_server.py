"""A plain Apache Thrift Ping server, for the interop tests of
kingpin-thrift's client.

    python3 ping_server.py GEN_DIR framed|buffered HOST

GEN_DIR holds the code `thrift --gen py` made from idl/ping.thrift. Listens
on a free port of HOST with the binary protocol, prints `listening on PORT`
once it accepts connections, and serves until killed. Answers as "python".
"""

import sys
import time

gen_dir, transport, host = sys.argv[1:4]
sys.path.insert(0, gen_dir)

from ping import Ping  # noqa: E402
from ping.ttypes import PingError, PingResponse  # noqa: E402
from thrift.protocol import TBinaryProtocol  # noqa: E402
from thrift.server import TServer  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402

NAME = "python"
FAILING_MESSAGE = "fail"


class PingHandler:
    def ping(self, request):
        if request.message == FAILING_MESSAGE:
            raise PingError(message=NAME + " was asked to fail")
        return PingResponse(message=request.message, server=NAME)

    def slow_ping(self, request, millis):
        time.sleep(max(millis, 0) / 1000)
        return PingResponse(message=request.message, server=NAME)


class AnnouncingServerSocket(TSocket.TServerSocket):
    """Says which port it got, once listening: the tests wait for that line."""

    def listen(self):
        super().listen()
        port = self.handle.getsockname()[1]
        print("listening on %d" % port, flush=True)


transports = {
    "framed": TTransport.TFramedTransportFactory,
    "buffered": TTransport.TBufferedTransportFactory,
}
if transport not in transports:
    sys.exit("the transport is framed or buffered, not %r" % transport)

server = TServer.TThreadedServer(
    Ping.Processor(PingHandler()),
    AnnouncingServerSocket(host=host, port=0),
    transports[transport](),
    TBinaryProtocol.TBinaryProtocolFactory(),
    daemon=True,
)
server.serve()
