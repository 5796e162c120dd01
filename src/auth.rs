//! Heketi's JWT rules, exactly (spec section 2): HS256/384/512 tokens whose `iss` (admin or
//! user) selects the key, `exp` required (`now <= exp`), `iat` with a leeway, `nbf` if
//! present, and `qsh` = hex SHA-256 of `METHOD&path`. Also the signer used by hekate-cli,
//! the benchmarks and the tests.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who a valid token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    User,
}

/// Why a request is refused, with Heketi's status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Required authorization token not found")]
    NoToken,
    #[error("Authorization header format must be Bearer {{token}}")]
    BadHeader,
    #[error("Invalid JWT token: {0}")]
    Invalid(String),
    #[error("Invalid qsh claim in token")]
    BadQsh,
    #[error("Administrator access required")]
    AdminRequired,
}

impl AuthError {
    pub fn status(&self) -> u16 {
        match self {
            AuthError::BadHeader => 400,
            _ => 401,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, Default)]
pub struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qsh: Option<String>,
}

/// The keys and leeway a server checks tokens with.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub admin_key: String,
    pub user_key: String,
    pub iat_leeway_secs: i64,
}

/// hex(SHA-256("METHOD&path")), path without the query string.
pub fn qsh(method: &str, path: &str) -> String {
    hex::encode(Sha256::digest(format!("{method}&{path}").as_bytes()))
}

impl Verifier {
    /// Authenticates a request from its `Authorization` header value, method and path.
    /// `now` is Unix seconds. Authorization (what a user may do) is [`authorize`].
    pub fn verify(
        &self,
        header: Option<&str>,
        method: &str,
        path: &str,
        now: i64,
    ) -> Result<Role, AuthError> {
        let header = header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(AuthError::NoToken)?;
        let fields: Vec<&str> = header.split_whitespace().collect();
        if fields.len() != 2 || !fields[0].eq_ignore_ascii_case("bearer") {
            return Err(AuthError::BadHeader);
        }
        let token = fields[1];
        if token.split('.').count() != 3 {
            return Err(AuthError::Invalid(
                "token contains an invalid number of segments".into(),
            ));
        }
        let head = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if !matches!(head.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(AuthError::Invalid(format!(
                "Unexpected signing method: {:?}",
                head.alg
            )));
        }
        let unverified: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let (role, key) = match unverified.iss.as_deref() {
            Some("admin") => (Role::Admin, &self.admin_key),
            Some("user") => (Role::User, &self.user_key),
            Some(_) => return Err(AuthError::Invalid("Unknown user".into())),
            None => return Err(AuthError::Invalid("Token missing iss claim".into())),
        };
        let mut v = Validation::new(head.alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(key.as_bytes()), &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::Invalid(
                    "signature is invalid (client and server secrets may not match)".into(),
                ),
                _ => AuthError::Invalid(e.to_string()),
            })?
            .claims;
        self.check_times(&claims, now)?;
        if claims.qsh.as_deref() != Some(qsh(method, path).as_str()) {
            return Err(AuthError::BadQsh);
        }
        Ok(role)
    }

    /// Heketi reports the last failing time claim (exp, then iat, then nbf).
    fn check_times(&self, c: &Claims, now: i64) -> Result<(), AuthError> {
        let mut failure = None;
        match c.exp {
            None => failure = Some("Token is expired (no exp claim)".to_string()),
            Some(exp) if now > exp => {
                failure = Some(format!("Token is expired by {}", go_duration(now - exp)))
            }
            _ => {}
        }
        if let Some(iat) = c.iat {
            if now < iat - self.iat_leeway_secs {
                failure = Some("Token used before issued (client and server clocks may differ)".into());
            }
        }
        if let Some(nbf) = c.nbf {
            if now < nbf {
                failure = Some("token is not valid yet".into());
            }
        }
        failure.map_or(Ok(()), |f| Err(AuthError::Invalid(f)))
    }
}

/// Go's `time.Duration` string for whole seconds: `5s`, `5m0s`, `1h1m40s`.
pub fn go_duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// What a role may do: admin everything; user `GET|POST /volumes` (Heketi's rule) and, a
/// fix of Heketi's, `GET /queue/{id}` of operations a user started (checked by the handler).
pub fn authorize(role: Role, path: &str) -> Result<(), AuthError> {
    match role {
        Role::Admin => Ok(()),
        Role::User if path == "/volumes" || path.starts_with("/queue/") => Ok(()),
        Role::User => Err(AuthError::AdminRequired),
    }
}

/// Signs a token as Heketi's Go client does: `iss`, `iat` = now, `exp` = now + ttl, `qsh`.
pub fn sign(iss: &str, key: &str, method: &str, path: &str, now: i64, ttl_secs: i64) -> String {
    let claims = Claims {
        iss: Some(iss.to_string()),
        iat: Some(now),
        exp: Some(now + ttl_secs),
        nbf: None,
        qsh: Some(qsh(method, path)),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap_or_default()
}

/// The clock tokens are signed and checked against (re-exported for signers: hekate-cli, the
/// benchmarks, the tests).
pub use crate::clock::now_unix;

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> Verifier {
        Verifier {
            admin_key: "adminkey".into(),
            user_key: "userkey".into(),
            iat_leeway_secs: 120,
        }
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn qsh_matches_heketi() {
        // sha256("GET&/clusters")
        assert_eq!(
            qsh("GET", "/clusters"),
            hex::encode(Sha256::digest(b"GET&/clusters"))
        );
    }

    #[test]
    fn admin_and_user_tokens_verify() {
        let v = verifier();
        let t = sign("admin", "adminkey", "GET", "/clusters", NOW, 300);
        assert_eq!(
            v.verify(Some(&bearer(&t)), "GET", "/clusters", NOW),
            Ok(Role::Admin)
        );
        let t = sign("user", "userkey", "POST", "/volumes", NOW, 300);
        assert_eq!(
            v.verify(Some(&bearer(&t)), "POST", "/volumes", NOW),
            Ok(Role::User)
        );
    }

    #[test]
    fn heketi_error_messages() {
        let v = verifier();
        assert_eq!(v.verify(None, "GET", "/clusters", NOW), Err(AuthError::NoToken));
        assert_eq!(
            v.verify(Some("Token abc"), "GET", "/clusters", NOW),
            Err(AuthError::BadHeader)
        );
        let wrong_key = sign("admin", "nope", "GET", "/clusters", NOW, 300);
        let e = v
            .verify(Some(&bearer(&wrong_key)), "GET", "/clusters", NOW)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid JWT token: signature is invalid (client and server secrets may not match)"
        );
        let other = sign("root", "adminkey", "GET", "/clusters", NOW, 300);
        assert_eq!(
            v.verify(Some(&bearer(&other)), "GET", "/clusters", NOW)
                .unwrap_err()
                .to_string(),
            "Invalid JWT token: Unknown user"
        );
        let t = sign("admin", "adminkey", "GET", "/nodes", NOW, 300);
        assert_eq!(
            v.verify(Some(&bearer(&t)), "GET", "/clusters", NOW),
            Err(AuthError::BadQsh)
        );
        assert!(v
            .verify(Some("Bearer a.b"), "GET", "/", NOW)
            .unwrap_err()
            .to_string()
            .contains("segments"));
    }

    #[test]
    fn exp_is_inclusive_and_required() {
        let v = verifier();
        let t = sign("admin", "adminkey", "GET", "/clusters", NOW - 1, 1);
        assert_eq!(
            v.verify(Some(&bearer(&t)), "GET", "/clusters", NOW),
            Ok(Role::Admin)
        );
        let t = sign("admin", "adminkey", "GET", "/clusters", NOW - 10, 1);
        let e = v
            .verify(Some(&bearer(&t)), "GET", "/clusters", NOW)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Invalid JWT token: Token is expired by"), "{e}");
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            (go_duration(5), go_duration(300), go_duration(3700)),
            ("5s".into(), "5m0s".into(), "1h1m40s".into())
        );
    }

    #[test]
    fn iat_leeway_is_120s() {
        let v = verifier();
        let t = sign("admin", "adminkey", "GET", "/clusters", NOW + 100, 300);
        assert!(v.verify(Some(&bearer(&t)), "GET", "/clusters", NOW).is_ok());
        let t = sign("admin", "adminkey", "GET", "/clusters", NOW + 200, 300);
        let e = v
            .verify(Some(&bearer(&t)), "GET", "/clusters", NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Token used before issued"), "{e}");
    }

    #[test]
    fn user_may_only_use_volumes() {
        assert!(authorize(Role::User, "/volumes").is_ok());
        assert_eq!(authorize(Role::User, "/clusters"), Err(AuthError::AdminRequired));
        assert!(authorize(Role::Admin, "/clusters").is_ok());
    }
}
