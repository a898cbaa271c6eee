// The example service of kingpin-thrift: a server names itself in each
// answer, so a client can see which host it reached.

namespace rs ping
namespace py ping

exception PingError {
  1: required string message,
}

struct PingRequest {
  1: required string message,
}

struct PingResponse {
  // The request's message, echoed.
  1: required string message,
  // The name of the server that answered.
  2: required string server,
}

service Ping {
  // Echoes the message; the message "fail" raises PingError.
  PingResponse ping(1: PingRequest request) throws (1: PingError error),

  // Echoes the message after `millis` milliseconds (for timeouts).
  PingResponse slow_ping(1: PingRequest request, 2: i32 millis),
}
