//! One serverset member as stored in its node: Finagle's serverset JSON,
//! the de-facto standard other clients (Finagle, Aurora, kazoo-based tools)
//! read and write, or KingPin's `<id>-<host:port>` node names.

use std::collections::BTreeMap;
use std::fmt;

use kingpin_client::Endpoint;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The prefix of the ephemeral-sequential member nodes this crate creates
/// (`member_0000000042`), as Finagle's and Aurora's serversets name them.
pub const MEMBER_PREFIX: &str = "member_";

/// A member's state, as Finagle defines it. Only [`Alive`](Self::Alive)
/// members receive traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberStatus {
    /// Serving.
    Alive,
    /// Starting, not serving yet.
    Starting,
    /// Draining.
    Stopping,
    /// Stopped.
    Stopped,
    /// Gone.
    Dead,
    /// Serving, with a warning.
    Warning,
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&text)
    }
}

/// A serverset member: where it serves, its other named endpoints (Finagle
/// calls the member's metadata `additionalEndpoints`: `admin`, `http`, …),
/// its status and an optional shard number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    /// The main endpoint: what goes into the serverset file.
    pub endpoint: Endpoint,
    /// Other named endpoints of the same process.
    pub additional_endpoints: BTreeMap<String, Endpoint>,
    /// The member's state; readers use [`Alive`](MemberStatus::Alive) ones.
    pub status: MemberStatus,
    /// The shard this member serves, for sharded services.
    pub shard: Option<i32>,
}

impl Member {
    /// An alive member serving at `endpoint`, with no additional endpoints
    /// and no shard.
    pub fn new(endpoint: Endpoint) -> Self {
        Member {
            endpoint,
            additional_endpoints: BTreeMap::new(),
            status: MemberStatus::Alive,
            shard: None,
        }
    }

    /// This member with another named endpoint.
    pub fn with_additional_endpoint(mut self, name: impl Into<String>, endpoint: Endpoint) -> Self {
        self.additional_endpoints.insert(name.into(), endpoint);
        self
    }

    /// This member serving `shard`.
    pub fn with_shard(mut self, shard: i32) -> Self {
        self.shard = Some(shard);
        self
    }

    /// This member with `status`.
    pub fn with_status(mut self, status: MemberStatus) -> Self {
        self.status = status;
        self
    }

    /// Whether the member should receive traffic.
    pub fn is_alive(&self) -> bool {
        self.status == MemberStatus::Alive
    }

    /// The member's node data: Finagle serverset JSON.
    ///
    /// ```
    /// use kingpin_api::discovery::Member;
    /// use kingpin_client::Endpoint;
    /// let member = Member::new(Endpoint::new("10.0.0.1", 8080)).with_shard(3);
    /// assert_eq!(
    ///     String::from_utf8(member.to_json()).unwrap(),
    ///     r#"{"serviceEndpoint":{"host":"10.0.0.1","port":8080},"additionalEndpoints":{},"status":"ALIVE","shard":3}"#
    /// );
    /// ```
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireMember {
            service_endpoint: WireEndpoint::from(&self.endpoint),
            additional_endpoints: self
                .additional_endpoints
                .iter()
                .map(|(name, endpoint)| (name.clone(), WireEndpoint::from(endpoint)))
                .collect(),
            status: Some(self.status),
            shard: self.shard,
        };
        // Strings, integers and maps of them always serialize.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Parses a member node's data (Finagle JSON).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` saying what is wrong: not JSON, no
    /// `serviceEndpoint`, a host that cannot be a host name, port 0.
    pub fn from_json(data: &[u8]) -> Result<Self> {
        let wire: WireMember = serde_json::from_slice(data)
            .map_err(|e| Error::invalid(format!("not Finagle serverset JSON: {e}")))?;
        let additional_endpoints = wire
            .additional_endpoints
            .into_iter()
            .map(|(name, endpoint)| Ok((name, endpoint.to_endpoint()?)))
            .collect::<Result<_>>()?;
        Ok(Member {
            endpoint: wire.service_endpoint.to_endpoint()?,
            additional_endpoints,
            // Finagle members without a status are taken as serving.
            status: wire.status.unwrap_or(MemberStatus::Alive),
            shard: wire.shard,
        })
    }

    /// Reads a member node: Finagle JSON in its data, or, failing that,
    /// KingPin's `<id>-<host:port>` node name (KingPin stored no data).
    /// `None` for a node that is neither (an unrelated child).
    ///
    /// ```
    /// use kingpin_api::discovery::Member;
    /// use kingpin_client::Endpoint;
    /// let kingpin = Member::from_node("0000000007-10.0.0.2:9090", b"").unwrap();
    /// assert_eq!(kingpin.endpoint, Endpoint::new("10.0.0.2", 9090));
    /// assert!(Member::from_node("lock", b"").is_none());
    /// ```
    pub fn from_node(node_name: &str, data: &[u8]) -> Option<Self> {
        if let Ok(member) = Self::from_json(data) {
            return Some(member);
        }
        let (_, endpoint) = node_name.split_once('-')?;
        endpoint.parse().ok().map(Member::new)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMember {
    service_endpoint: WireEndpoint,
    #[serde(default)]
    additional_endpoints: BTreeMap<String, WireEndpoint>,
    #[serde(default, deserialize_with = "lenient_status")]
    status: Option<MemberStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<i32>,
}

/// A status this crate does not know (another client's extension) reads
/// as not serving, rather than failing the whole member.
fn lenient_status<'de, D>(deserializer: D) -> std::result::Result<Option<MemberStatus>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let status = Option::<String>::deserialize(deserializer)?;
    Ok(status.map(|s| {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase()))
            .unwrap_or(MemberStatus::Dead)
    }))
}

#[derive(Serialize, Deserialize)]
struct WireEndpoint {
    host: String,
    port: u16,
}

impl From<&Endpoint> for WireEndpoint {
    fn from(endpoint: &Endpoint) -> Self {
        WireEndpoint {
            host: endpoint.host.clone(),
            port: endpoint.port,
        }
    }
}

impl WireEndpoint {
    /// Checked as a `host:port` line is: the host becomes a line of a
    /// local file.
    fn to_endpoint(&self) -> Result<Endpoint> {
        let text = Endpoint::new(self.host.clone(), self.port).to_string();
        text.parse()
            .map_err(|e| Error::invalid(format!("member endpoint: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finagle_json_round_trips() {
        let member = Member::new(Endpoint::new("10.0.0.1", 8080))
            .with_additional_endpoint("admin", Endpoint::new("10.0.0.1", 9990))
            .with_shard(2);
        assert_eq!(Member::from_json(&member.to_json()).unwrap(), member);
    }

    #[test]
    fn finagle_members_written_by_others_are_read() {
        let data = br#"{"serviceEndpoint": {"host": "web-1.example", "port": 80},
            "additionalEndpoints": {"http": {"host": "web-1.example", "port": 8080}},
            "status": "ALIVE", "shard": 0, "memberId": "x"}"#;
        let member = Member::from_json(data).unwrap();
        assert_eq!(member.endpoint, Endpoint::new("web-1.example", 80));
        assert_eq!(member.additional_endpoints["http"].port, 8080);
        assert_eq!(member.shard, Some(0));
        assert!(member.is_alive());
        let no_status = br#"{"serviceEndpoint": {"host": "h", "port": 1}}"#;
        assert!(Member::from_json(no_status).unwrap().is_alive());
        let dead = br#"{"serviceEndpoint": {"host": "h", "port": 1}, "status": "DEAD"}"#;
        assert_eq!(Member::from_json(dead).unwrap().status, MemberStatus::Dead);
        let unknown = br#"{"serviceEndpoint": {"host": "h", "port": 1}, "status": "ODD"}"#;
        assert!(!Member::from_json(unknown).unwrap().is_alive());
    }

    #[test]
    fn bad_members_are_refused_with_the_reason() {
        for (data, why) in [
            (&b"garbage"[..], "not Finagle"),
            (br#"{"status": "ALIVE"}"#, "serviceEndpoint"),
            (
                br#"{"serviceEndpoint": {"host": "a b", "port": 1}}"#,
                "host",
            ),
            (br#"{"serviceEndpoint": {"host": "h", "port": 0}}"#, "port"),
            (
                br#"{"serviceEndpoint": {"host": "evil\nhost", "port": 1}}"#,
                "host",
            ),
        ] {
            let err = Member::from_json(data).unwrap_err();
            assert!(err.to_string().contains(why), "{err} should say {why}");
        }
    }

    #[test]
    fn kingpin_names_are_members_and_other_children_are_not() {
        assert_eq!(
            Member::from_node("0000000003-10.0.0.2:9090", b"")
                .unwrap()
                .endpoint,
            Endpoint::new("10.0.0.2", 9090)
        );
        assert_eq!(
            Member::from_node("7-[::1]:80", b"").unwrap().endpoint,
            Endpoint::new("::1", 80)
        );
        assert!(Member::from_node("member_0000000004", b"garbage").is_none());
        assert!(Member::from_node("1-evil host\n:80", b"").is_none());
        assert!(Member::from_node("lock", b"").is_none());
    }
}
