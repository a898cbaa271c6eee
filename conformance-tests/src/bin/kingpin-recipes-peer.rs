//! A second OS process holding a recipe, for the recipe suite's cases that
//! kill a holder with SIGKILL:
//!
//! - `kingpin-recipes-peer URL lock PATH`: takes the lock at PATH;
//! - `kingpin-recipes-peer URL campaign PATH`: becomes leader of the
//!   election at PATH.
//!
//! Prints `held <token>` once it holds, then keeps holding until its stdin
//! closes (then releases and exits) or it is killed.

use std::process::ExitCode;

use kingpin_api::NodePath;
use kingpin_recipes::{Election, Lock};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [url, "lock", path] => hold(url, path, false).await,
        [url, "campaign", path] => hold(url, path, true).await,
        _ => Err("usage: kingpin-recipes-peer URL (lock|campaign) PATH".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kingpin-recipes-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn hold(url: &str, path: &str, campaign: bool) -> Result<(), String> {
    let path = NodePath::parse(path).map_err(|e| e.to_string())?;
    let coordinator = kingpin::open_coordinator(url)
        .await
        .map_err(|e| e.to_string())?;
    let guard = if campaign {
        let identifier = format!("peer-{}", std::process::id());
        let leadership = Election::new(coordinator.clone(), path)
            .with_identifier(identifier)
            .campaign()
            .await
            .map_err(|e| e.to_string())?;
        println!("held {}", leadership.token());
        Ok::<_, String>(Box::new(leadership) as Box<dyn Send>)
    } else {
        let guard = Lock::new(coordinator.clone(), path)
            .lock()
            .await
            .map_err(|e| e.to_string())?;
        println!("held {}", guard.token());
        Ok(Box::new(guard) as Box<dyn Send>)
    }?;
    let mut rest = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut rest).await;
    drop(guard);
    coordinator.close().await.map_err(|e| e.to_string())
}
