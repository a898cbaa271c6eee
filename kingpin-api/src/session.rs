//! Session bookkeeping shared by every backend: the current state and a
//! broadcast of events.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::BroadcastStream;

use crate::coordinator::{SessionEvent, SessionEvents, SessionState};

/// Publishes a coordinator's session state and events.
///
/// Backends call [`publish`](Self::publish) as their session changes and
/// hand out [`events`](Self::events) and [`state`](Self::state).
#[derive(Debug, Clone)]
pub struct SessionHub {
    state: Arc<watch::Sender<SessionState>>,
    events: broadcast::Sender<SessionEvent>,
}

impl SessionHub {
    /// A hub whose session is in `initial` state.
    pub fn new(initial: SessionState) -> Self {
        let (events, _) = broadcast::channel(64);
        SessionHub {
            state: Arc::new(watch::Sender::new(initial)),
            events,
        }
    }

    /// Records `event` and the state it leads to, and broadcasts it. After
    /// [`close`](Self::close) nothing is published: closed is final.
    pub fn publish(&self, event: SessionEvent) {
        if self.state() == SessionState::Closed {
            return;
        }
        let state = match event {
            SessionEvent::Connected | SessionEvent::Reconnected => SessionState::Connected,
            SessionEvent::Suspended => SessionState::Suspended,
            SessionEvent::Expired => SessionState::Expired,
        };
        self.state.send_replace(state);
        // No subscriber is fine: nobody is listening.
        let _ = self.events.send(event);
    }

    /// Marks the session closed. No more events follow.
    pub fn close(&self) {
        self.state.send_replace(SessionState::Closed);
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        *self.state.borrow()
    }

    /// Events from now on. A subscriber that falls more than 64 events behind
    /// skips the oldest ones; the state stays available through
    /// [`state`](Self::state).
    pub fn events(&self) -> SessionEvents {
        BroadcastStream::new(self.events.subscribe())
            .filter_map(|e| async move { e.ok() })
            .boxed()
    }
}
