//! The one rule that names this host, for the monitor and the command line
//! alike: an explicit setting, else `KINGPIN_HOST`, else the host's FQDN.

use super::names::HostId;
use crate::error::{Error, ErrorKind, Result};

/// The environment variable that overrides the host's identity.
pub const HOST_ENV: &str = "KINGPIN_HOST";

/// This host's identity: `explicit` when given (a monitor's `host`
/// setting, the CLI's `--host`), else `$KINGPIN_HOST`, else the FQDN (the
/// resolver's canonical name of the host name, as `hostname -f` prints
/// it), else the plain host name when it does not resolve.
///
/// This does blocking name resolution; call it once, at start.
pub fn local_host_id(explicit: Option<&str>) -> Result<HostId> {
    if let Some(host) = explicit {
        return HostId::parse(host);
    }
    if let Ok(host) = std::env::var(HOST_ENV) {
        if !host.is_empty() {
            return HostId::parse(&host)
                .map_err(|e| Error::invalid(format!("{HOST_ENV}: {}", e.message())));
        }
    }
    HostId::parse(&fqdn()?)
}

/// The FQDN of this host: the canonical name `getaddrinfo` gives the host
/// name, or the host name itself when it does not resolve.
pub fn fqdn() -> Result<String> {
    let hostname = dns_lookup::get_hostname().map_err(|e| {
        Error::new(ErrorKind::Backend, "cannot read this host's name").with_source(e)
    })?;
    let hints = dns_lookup::AddrInfoHints {
        flags: libc::AI_CANONNAME,
        ..Default::default()
    };
    let canonical = dns_lookup::getaddrinfo(Some(&hostname), None, Some(hints))
        .ok()
        .and_then(|mut infos| infos.find_map(|info| info.ok()?.canonname))
        .filter(|name| !name.is_empty());
    Ok(canonical.unwrap_or(hostname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_identity_wins_and_is_checked() {
        assert_eq!(
            local_host_id(Some("Web-1.example.com")).unwrap().as_str(),
            "web-1.example.com"
        );
        assert!(local_host_id(Some("a/b")).is_err());
        // Whatever the machine is called, it has a usable identity.
        let fqdn = fqdn().unwrap();
        assert!(!fqdn.is_empty());
    }
}
