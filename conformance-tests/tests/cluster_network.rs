//! The test network is real: a partition drops packets (a connection
//! attempt hangs until its timeout, nothing refuses it), the host and
//! other nodes keep talking, and healing restores the path.

use std::time::{Duration, Instant};

use kingpin_conformance_tests::cluster::{skip_netns, ClientRuntime, Network};
use kingpin_conformance_tests::harness::skip;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects from the runtime's namespace and exchanges one line: how long
/// it took, or why it failed.
async fn exchange(from: &ClientRuntime, to: std::net::SocketAddr) -> Result<Duration, String> {
    from.run(async move {
        let started = Instant::now();
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to))
            .await
            .map_err(|_| format!("connect timed out after {:?}", started.elapsed()))?
            .map_err(|e| format!("connect failed: {e}"))?;
        stream
            .write_all(b"ping\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut reply = [0u8; 5];
        stream
            .read_exact(&mut reply)
            .await
            .map_err(|e| e.to_string())?;
        Ok(started.elapsed())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_drops_packets_and_healing_restores_them() {
    let network = match Network::create() {
        Ok(network) => network,
        Err(e) if skip_netns() => return skip("netns", "partition", &e),
        Err(e) => {
            panic!("cannot create a test network: {e} (set KINGPIN_TEST_SKIP_NETNS=1 to skip)")
        }
    };
    let a = network.add_node("a").unwrap();
    let b = network.add_node("b").unwrap();
    let c = network.add_node("c").unwrap();
    let (ra, rb, rc) = (
        ClientRuntime::new(&a).unwrap(),
        ClientRuntime::new(&b).unwrap(),
        ClientRuntime::new(&c).unwrap(),
    );
    // An echo server on b's address, listening in b's namespace.
    let addr: std::net::SocketAddr = (b.addr, 7000).into();
    let listener = rb
        .run(async move { TcpListener::bind(addr).await })
        .await
        .unwrap();
    rb.spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 5];
                if socket.read_exact(&mut buf).await.is_ok() {
                    let _ = socket.write_all(&buf).await;
                }
            });
        }
    });

    let before = exchange(&ra, addr)
        .await
        .expect("a reaches b before the partition");
    network.block(a.addr, b.addr).unwrap();
    let started = Instant::now();
    let cut = exchange(&ra, addr).await;
    let waited = started.elapsed();
    let err = cut.expect_err("a must not reach b across a partition");
    assert!(
        err.contains("timed out") && waited >= CONNECT_TIMEOUT,
        "a partition drops packets: the connection hangs, nothing refuses it ({err})"
    );
    let other = exchange(&rc, addr).await.expect("c still reaches b");
    network.heal().unwrap();
    let after = exchange(&ra, addr)
        .await
        .expect("a reaches b after the heal");
    println!(
        "network {}: a->b {:?} before; across the partition: {err}; c->b {:?} meanwhile; a->b {:?} after the heal",
        network.id(),
        before,
        other,
        after
    );
}
