//! Signed session cookies and CSRF tokens.
//!
//! A session is a cookie `kp_session=<user>.<expiry>.<nonce>.<mac>`
//! (the first three base64url-encoded), signed with HMAC-SHA256 under the
//! console's key, so several console instances sharing the key agree on
//! who is signed in without sharing state. The CSRF token of a session is
//! another MAC, over its nonce: a page of the console can carry it, a
//! page elsewhere cannot compute it.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::settings::SettingsError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kp_session";
/// The cookie carrying the sign-in form's CSRF nonce before a session
/// exists.
pub const SIGNIN_COOKIE: &str = "kp_signin";

type HmacSha256 = Hmac<Sha256>;

/// The signing key.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// A signed-in session read from its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who.
    pub user: String,
    /// Random per sign-in; what the CSRF token is bound to.
    pub nonce: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random base64url string of 16 bytes.
pub fn random_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    B64.encode(bytes)
}

impl SessionKey {
    /// A fresh random key (sessions end with the process).
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        SessionKey(key)
    }

    /// The key in `path` (at least 32 bytes; the first 32 are used), or a
    /// new random one written there (mode 0600) when the file does not
    /// exist.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() >= 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes[..32]);
                Ok(SessionKey(key))
            }
            Ok(_) => Err(SettingsError(format!(
                "the session key file {} holds fewer than 32 bytes",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SessionKey::random();
                write_private(path, &key.0).map_err(|e| {
                    SettingsError(format!(
                        "cannot write the session key file {}: {e}",
                        path.display()
                    ))
                })?;
                Ok(key)
            }
            Err(e) => Err(SettingsError(format!(
                "cannot read the session key file {}: {e}",
                path.display()
            ))),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.0) else {
            return false;
        };
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        // Constant-time comparison.
        mac.verify_slice(tag).is_ok()
    }

    /// The cookie value of a new session for `user`, lasting `lifetime`.
    pub fn issue(&self, user: &str, lifetime: Duration) -> (String, Session) {
        let nonce = random_nonce();
        let expiry = (now_secs() + lifetime.as_secs()).to_string();
        let tag = self.mac(&[
            b"session",
            user.as_bytes(),
            expiry.as_bytes(),
            nonce.as_bytes(),
        ]);
        let value = format!(
            "{}.{}.{}.{}",
            B64.encode(user),
            B64.encode(&expiry),
            nonce,
            B64.encode(tag)
        );
        (
            value,
            Session {
                user: user.to_owned(),
                nonce,
            },
        )
    }

    /// The session a cookie value stands for, if it is genuine and not
    /// expired.
    pub fn open(&self, value: &str) -> Option<Session> {
        let mut parts = value.split('.');
        let user = String::from_utf8(B64.decode(parts.next()?).ok()?).ok()?;
        let expiry = String::from_utf8(B64.decode(parts.next()?).ok()?).ok()?;
        let nonce = parts.next()?.to_owned();
        let tag = B64.decode(parts.next()?).ok()?;
        if parts.next().is_some()
            || !self.verify(
                &[
                    b"session",
                    user.as_bytes(),
                    expiry.as_bytes(),
                    nonce.as_bytes(),
                ],
                &tag,
            )
        {
            return None;
        }
        (expiry.parse::<u64>().ok()? > now_secs()).then_some(Session { user, nonce })
    }

    /// The CSRF token bound to `binding` (a session's nonce, or the user
    /// a proxy names).
    pub fn csrf_token(&self, binding: &str) -> String {
        B64.encode(self.mac(&[b"csrf", binding.as_bytes()]))
    }

    /// Whether `token` is the CSRF token of `binding`.
    pub fn check_csrf(&self, binding: &str, token: &str) -> bool {
        match B64.decode(token) {
            Ok(tag) => self.verify(&[b"csrf", binding.as_bytes()], &tag),
            Err(_) => false,
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, the whole site.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_tokens_are_bound_to_the_key() {
        let key = SessionKey::random();
        let (cookie, session) = key.issue("alice", Duration::from_secs(60));
        assert_eq!(key.open(&cookie), Some(session.clone()));
        assert_eq!(SessionKey::random().open(&cookie), None);
        let forged = cookie.replacen(&B64.encode("alice"), &B64.encode("admin"), 1);
        assert_eq!(key.open(&forged), None);
        let token = key.csrf_token(&session.nonce);
        assert!(key.check_csrf(&session.nonce, &token));
        assert!(!key.check_csrf("other", &token));
        assert!(!key.check_csrf(&session.nonce, "garbage!"));
        let (expired, _) = key.issue("alice", Duration::ZERO);
        assert_eq!(key.open(&expired), None);
    }

    #[test]
    fn a_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let first = SessionKey::from_file(&path).unwrap();
        let again = SessionKey::from_file(&path).unwrap();
        assert_eq!(first.0, again.0);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(
            cookie("a=1; kp_session=xyz; b=2", "kp_session"),
            Some("xyz")
        );
        assert_eq!(cookie("a=1", "kp_session"), None);
    }
}
