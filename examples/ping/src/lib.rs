//! The example service of kingpin-thrift: the code volo-build generates
//! for `idl/ping.thrift`, and a handler that names its server in each
//! answer.

use std::time::Duration;

use volo::FastStr;
use volo_thrift::{MaybeException, ServerError};

/// The code generated from `idl/ping.thrift`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod gen {
    include!(concat!(env!("OUT_DIR"), "/volo_gen.rs"));
    pub use volo_gen::*;
}

use gen::ping::{Ping, PingError, PingPingException, PingRequest, PingResponse};

/// The message that makes `ping` raise `PingError`.
pub const FAILING_MESSAGE: &str = "fail";

/// Answers pings with its name.
#[derive(Debug, Clone)]
pub struct PingHandler {
    name: FastStr,
}

impl PingHandler {
    /// A handler that answers as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        PingHandler {
            name: FastStr::new(name.into()),
        }
    }

    fn answer(&self, request: PingRequest) -> PingResponse {
        PingResponse {
            message: request.message,
            server: self.name.clone(),
        }
    }
}

impl Ping for PingHandler {
    async fn ping(
        &self,
        request: PingRequest,
    ) -> Result<MaybeException<PingResponse, PingPingException>, ServerError> {
        if request.message == FAILING_MESSAGE {
            return Ok(MaybeException::Exception(PingPingException::Error(
                PingError {
                    message: format!("{} was asked to fail", self.name).into(),
                },
            )));
        }
        Ok(MaybeException::Ok(self.answer(request)))
    }

    async fn slow_ping(
        &self,
        request: PingRequest,
        millis: i32,
    ) -> Result<PingResponse, ServerError> {
        let millis = u64::try_from(millis).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(self.answer(request))
    }
}
