//! Serverset members as the monitor reads them: Finagle serverset JSON in
//! the member node's data, or KingPin's `<id>-<host:port>` member names.

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FinagleMember {
    service_endpoint: FinagleEndpoint,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct FinagleEndpoint {
    host: String,
    port: u16,
}

/// The `host:port` of a member, or `None` when it is not alive or not a
/// member at all. Finagle JSON in the data wins; otherwise the child name
/// may be KingPin's `<id>-<host:port>`.
pub fn member_endpoint(child_name: &str, data: &[u8]) -> Option<String> {
    if let Ok(member) = serde_json::from_slice::<FinagleMember>(data) {
        let alive = member
            .status
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("ALIVE"));
        let host = member.service_endpoint.host;
        return (alive && valid_host(&host))
            .then(|| format_endpoint(&host, member.service_endpoint.port));
    }
    let (_, endpoint) = child_name.split_once('-')?;
    let (host, port) = endpoint.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    valid_host(host).then(|| format_endpoint(host, port))
}

/// Hosts become lines of a file: no whitespace or control characters.
fn valid_host(host: &str) -> bool {
    !host.is_empty() && !host.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn format_endpoint(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The file content: sorted, distinct `host:port` lines.
pub fn serverset_file(mut endpoints: Vec<String>) -> Vec<u8> {
    endpoints.sort();
    endpoints.dedup();
    let mut text = String::new();
    for endpoint in endpoints {
        text.push_str(&endpoint);
        text.push('\n');
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finagle_json_and_kingpin_names() {
        let finagle = br#"{"serviceEndpoint":{"host":"10.0.0.1","port":8080},"additionalEndpoints":{},"status":"ALIVE","shard":0}"#;
        assert_eq!(
            member_endpoint("member_0000000001", finagle).as_deref(),
            Some("10.0.0.1:8080")
        );
        let dead = br#"{"serviceEndpoint":{"host":"10.0.0.1","port":8080},"status":"DEAD"}"#;
        assert_eq!(member_endpoint("member_0000000002", dead), None);
        assert_eq!(
            member_endpoint("0000000003-10.0.0.2:9090", b"").as_deref(),
            Some("10.0.0.2:9090")
        );
        assert_eq!(
            member_endpoint("7-[::1]:80", b"").as_deref(),
            Some("[::1]:80")
        );
        assert_eq!(member_endpoint("member_0000000004", b"garbage"), None);
        assert_eq!(member_endpoint("1-evil host\n:80", b""), None);
    }

    #[test]
    fn files_are_sorted_distinct_lines() {
        let file = serverset_file(vec!["b:1".into(), "a:2".into(), "b:1".into()]);
        assert_eq!(file, b"a:2\nb:1\n");
    }
}
