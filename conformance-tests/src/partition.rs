//! A TCP proxy between a client and its server that can cut the network:
//! the realistic way to make a server expire a client's session.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards `127.0.0.1:<port>` to an upstream `host:port` until
/// [`cut`](Self::cut), which drops every connection and refuses new ones
/// until [`heal`](Self::heal).
#[derive(Debug)]
pub struct Partition {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Partition {
    /// Starts forwarding to `upstream`.
    pub async fn start(upstream: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, _) = watch::channel(false);
        let state = cut.subscribe();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *state.borrow() {
                    continue; // dropped: the connection is refused in effect
                }
                let upstream = upstream.clone();
                let mut state = state.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(Partition { addr, cut })
    }

    /// The address clients connect to.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Cuts the network: open connections drop, new ones are closed at once.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Restores the network.
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}
