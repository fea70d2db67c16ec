//! Who may ask what of `arca ui`.
//!
//! - **Authentication**: on a loopback address none is needed (the machine's users are trusted
//!   as they are with the repository's password file); on any other address the server refuses
//!   to start without a password hash (Argon2id, PHC string, made by `arca ui --hash-password`)
//!   or a token. A login makes a session; a token also works per request as
//!   `Authorization: Bearer …` (monitoring, scripts).
//! - **Sessions**: a random 256-bit ID in an `HttpOnly`, `SameSite=Strict` cookie; the server
//!   keeps only its BLAKE3 hash, a bounded number of them, each expiring after 12 idle hours.
//! - **CSRF**: every state-changing request (every POST: login, logout, restore, backup)
//!   carries the session's token in a form field, compared in constant time, and must not come
//!   from another origin (`Origin`, `Sec-Fetch-Site`).
//! - **Host**: on loopback, a request must name the server by a loopback name (`127.0.0.1`,
//!   `localhost`, `[::1]`): a page elsewhere that rebinds its own DNS name to 127.0.0.1 gets
//!   nothing.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The session cookie's name.
pub const COOKIE: &str = "arca_session";
/// Most sessions kept; the least recently used goes first.
const MAX_SESSIONS: usize = 4096;
/// A session unused for this long is forgotten.
const IDLE: Duration = Duration::from_secs(12 * 3600);

/// The credentials the server accepts.
#[derive(Clone, Default)]
pub struct Credentials {
    /// An Argon2id PHC string (`$argon2id$v=19$m=…`).
    pub password_hash: Option<String>,
    /// A bearer token.
    pub token: Option<Zeroizing<String>>,
}

impl Credentials {
    /// Whether any credential is set (then every request needs one).
    pub fn any(&self) -> bool {
        self.password_hash.is_some() || self.token.is_some()
    }

    /// Check the PHC string now, so that a typo fails at start, not at the first login.
    pub fn validate(&self) -> Result<()> {
        if let Some(h) = &self.password_hash {
            let parsed = argon2::PasswordHash::new(h.trim())
                .map_err(|e| Error::InvalidArgument(format!("password hash: not a PHC string ({e})")))?;
            if parsed.algorithm.as_str() != "argon2id" {
                return Err(Error::InvalidArgument("password hash: must be Argon2id (arca ui --hash-password)".into()));
            }
        }
        if self.token.as_ref().is_some_and(|t| t.trim().len() < 16) {
            return Err(Error::InvalidArgument("token: at least 16 characters".into()));
        }
        Ok(())
    }

    /// Whether `secret` (from the login form) is the password or the token.
    pub fn accepts(&self, secret: &str) -> bool {
        self.accepts_token(secret) || self.accepts_password(secret)
    }

    /// Whether `secret` is the token (constant time).
    pub fn accepts_token(&self, secret: &str) -> bool {
        self.token.as_ref().is_some_and(|t| same(t.trim().as_bytes(), secret.as_bytes()))
    }

    fn accepts_password(&self, secret: &str) -> bool {
        use argon2::PasswordVerifier;
        let Some(h) = &self.password_hash else { return false };
        let Ok(parsed) = argon2::PasswordHash::new(h.trim()) else { return false };
        argon2::Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok()
    }
}

/// An Argon2id PHC string for `password` (19 MiB, 2 passes: OWASP's choice), with a random salt.
pub fn hash_password(password: &[u8]) -> Result<String> {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| Error::InvalidArgument(format!("no randomness: {e}")))?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt)
        .map_err(|e| Error::InvalidArgument(format!("salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::InvalidArgument(format!("hashing the password: {e}")))
}

/// Equal bytes, in time independent of where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (blake3::hash(a), blake3::hash(b));
    ha == hb // blake3::Hash's equality is constant-time
}

/// A session as the pages see it.
#[derive(Clone, Debug)]
pub struct Session {
    /// The form token state-changing requests must carry.
    pub csrf: String,
    /// Whether it logged in (or needs no login).
    pub authenticated: bool,
}

struct Kept {
    session: Session,
    used: Instant,
}

/// The sessions of a running server.
#[derive(Default)]
pub struct Sessions {
    kept: Mutex<HashMap<[u8; 32], Kept>>,
}

/// 32 random bytes as hex.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the operating system's random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn key(cookie: &str) -> [u8; 32] {
    *blake3::hash(cookie.as_bytes()).as_bytes()
}

impl Sessions {
    /// The session a cookie names, if it is alive.
    pub fn get(&self, cookie: &str) -> Option<Session> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let k = key(cookie);
        match kept.get_mut(&k) {
            Some(s) if s.used.elapsed() < IDLE => {
                s.used = Instant::now();
                Some(s.session.clone())
            }
            Some(_) => {
                kept.remove(&k);
                None
            }
            None => None,
        }
    }

    /// A new session: its cookie value and the session.
    pub fn create(&self, authenticated: bool) -> (String, Session) {
        let cookie = random_hex();
        let session = Session { csrf: random_hex(), authenticated };
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= MAX_SESSIONS {
            kept.retain(|_, s| s.used.elapsed() < IDLE);
        }
        if kept.len() >= MAX_SESSIONS {
            // Unauthenticated sessions are anyone's to make: they go before logged-in ones.
            let victim = kept.iter().min_by_key(|(_, s)| (s.session.authenticated, s.used)).map(|(k, _)| *k);
            if let Some(v) = victim {
                kept.remove(&v);
            }
        }
        kept.insert(key(&cookie), Kept { session: session.clone(), used: Instant::now() });
        (cookie, session)
    }

    /// Forget a session (logout; a login replaces the session it came from).
    pub fn remove(&self, cookie: &str) {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(cookie));
    }
}

/// Whether `host` (the `Host` header) names a loopback server: `127.0.0.1:PORT`,
/// `localhost:PORT`, `[::1]:PORT` (or without the port).
pub fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => {
            host.rsplit_once(':').map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
        }
    };
    let name = name.to_ascii_lowercase();
    name == "localhost" || name == "::1" || name.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// Whether a POST's `Origin`/`Sec-Fetch-Site` headers allow it: absent (older clients, curl),
/// or this server itself.
pub fn same_origin(origin: Option<&str>, fetch_site: Option<&str>, host: &str) -> bool {
    if fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
        return false;
    }
    match origin {
        None => true,
        Some(o) => o
            .strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            .is_some_and(|h| h.eq_ignore_ascii_case(host)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for h in ["127.0.0.1:8080", "localhost:1", "[::1]:80", "LOCALHOST", "127.0.0.1"] {
            assert!(loopback_host(h), "{h}");
        }
        for h in ["evil.example:8080", "127.0.0.1.evil.example", "10.0.0.1:80", "[::2]:80", "", "localhost.evil:80"] {
            assert!(!loopback_host(h), "{h}");
        }
    }

    #[test]
    fn origins() {
        assert!(same_origin(None, None, "127.0.0.1:8080"));
        assert!(same_origin(Some("http://127.0.0.1:8080"), Some("same-origin"), "127.0.0.1:8080"));
        assert!(!same_origin(Some("http://evil.example"), None, "127.0.0.1:8080"));
        assert!(!same_origin(None, Some("cross-site"), "127.0.0.1:8080"));
    }

    #[test]
    fn passwords_and_tokens() {
        let phc = hash_password(b"correct horse").unwrap();
        let c = Credentials { password_hash: Some(phc), token: Some(Zeroizing::new("t".repeat(20))) };
        c.validate().unwrap();
        assert!(c.accepts("correct horse") && c.accepts(&"t".repeat(20)));
        assert!(!c.accepts("wrong") && !c.accepts(""));
        let bad =
            Credentials { password_hash: Some("$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()), token: None };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let (first, _) = s.create(true);
        for _ in 0..MAX_SESSIONS + 10 {
            s.create(false);
        }
        assert!(s.get(&first).is_some(), "a logged-in session outlives anonymous ones");
        assert!(s.kept.lock().unwrap().len() <= MAX_SESSIONS);
    }
}
