//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677, Kafka's KIP-84), server side.
//!
//! What is stored per user and mechanism is Kafka's: salt, iteration count, StoredKey = H(ClientKey)
//! and ServerKey, never the password. The same stored keys also check a SASL/PLAIN password, by
//! recomputing StoredKey from it.
//!
//! Hashing, HMAC and PBKDF2 come from RustCrypto's `sha2`, `hmac` and `pbkdf2`; comparisons of secrets
//! are constant time (`subtle`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's minimum (and default) iteration count for SCRAM credentials.
pub const MIN_ITERATIONS: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's `ScramMechanism` type byte in DescribeUserScramCredentials / AlterUserScramCredentials.
    pub fn kafka_type(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<Self> {
        match t {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Self::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec(),
            Self::Sha512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec(),
        }
    }
}

/// What the store keeps for one user and mechanism.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// Salts and hashes `password` with a fresh random salt.
    pub fn new(mechanism: ScramMechanism, password: &[u8], iterations: u32) -> Self {
        let mut salt = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::with_salt(mechanism, password, salt, iterations)
    }

    /// From an already salted password, as AlterUserScramCredentials sends it.
    pub fn from_salted_password(mechanism: ScramMechanism, salted: &[u8], salt: Vec<u8>, iterations: u32) -> Self {
        let client_key = mechanism.hmac(salted, b"Client Key");
        let stored_key = mechanism.hash(&client_key);
        let server_key = mechanism.hmac(salted, b"Server Key");
        Self { salt, iterations, stored_key, server_key }
    }

    fn with_salt(mechanism: ScramMechanism, password: &[u8], salt: Vec<u8>, iterations: u32) -> Self {
        let salted = mechanism.salted_password(password, &salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// Whether `password` is this credential's password (for SASL/PLAIN). Constant time in the keys.
    pub fn verify_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        let candidate = Self::with_salt(mechanism, password, self.salt.clone(), self.iterations);
        bool::from(candidate.stored_key.ct_eq(&self.stored_key))
    }
}

mod b64 {
    use super::{Engine, B64};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// Why a SCRAM exchange failed. The text is for the broker's log and the client's error message; it never
/// holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("unknown user or invalid credentials")]
    InvalidCredentials,
    #[error("channel binding is not supported")]
    ChannelBinding,
}

/// The server's side of one exchange: client-first → server-first → client-final → server-final.
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
}

enum State {
    AwaitingClientFirst,
    AwaitingClientFinal {
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        client_nonce: String,
        nonce: String,
        credential: ScramCredential,
    },
    Done,
}

/// What a client-first message says, before credentials are looked up.
pub struct ClientFirst {
    pub username: String,
    gs2_header: String,
    client_first_bare: String,
    client_nonce: String,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        Self { mechanism, state: State::AwaitingClientFirst }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Parses the client-first message: `gs2-header client-first-bare`.
    pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let mut parts = text.splitn(3, ',');
        let cbind = parts.next().ok_or(ScramError::Malformed("no gs2 header"))?;
        match cbind {
            "n" | "y" => {}
            c if c.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed("bad channel binding flag")),
        }
        let authzid = parts.next().ok_or(ScramError::Malformed("no authzid field"))?;
        let client_first_bare = parts.next().ok_or(ScramError::Malformed("no client-first-bare"))?;
        let gs2_header = format!("{cbind},{authzid},");
        let mut fields = client_first_bare.split(',');
        let username = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or(ScramError::Malformed("client-first must start with n=username"))?;
        let username = unescape_saslname(username)?;
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or(ScramError::Malformed("client-first needs r=nonce"))?
            .to_owned();
        if let Some(authz) = authzid.strip_prefix("a=") {
            if unescape_saslname(authz)? != username {
                return Err(ScramError::Malformed("authorization id differs from the user name"));
            }
        } else if !authzid.is_empty() {
            return Err(ScramError::Malformed("bad authzid field"));
        }
        Ok(ClientFirst { username, gs2_header, client_first_bare: client_first_bare.to_owned(), client_nonce })
    }

    /// Answers a parsed client-first with server-first, given the user's credential.
    pub fn server_first(&mut self, first: ClientFirst, credential: ScramCredential) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, State::AwaitingClientFirst) {
            return Err(ScramError::Malformed("client-first sent twice"));
        }
        let mut server_nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut server_nonce);
        let nonce = format!("{}{}", first.client_nonce, B64.encode(server_nonce));
        let server_first = format!("r={nonce},s={},i={}", B64.encode(&credential.salt), credential.iterations);
        self.state = State::AwaitingClientFinal {
            gs2_header: first.gs2_header,
            client_first_bare: first.client_first_bare,
            server_first: server_first.clone(),
            client_nonce: first.client_nonce,
            nonce,
            credential,
        };
        Ok(server_first.into_bytes())
    }

    /// Checks client-final's proof; on success returns server-final (`v=signature`).
    pub fn client_final(&mut self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        let State::AwaitingClientFinal { gs2_header, client_first_bare, server_first, client_nonce, nonce, credential } =
            std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(ScramError::Malformed("client-final out of order"));
        };
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) =
            text.rsplit_once(",p=").ok_or(ScramError::Malformed("client-final needs p=proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::Malformed("client-final must start with c=binding"))?;
        if B64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(ScramError::Malformed("channel binding differs from the gs2 header"));
        }
        let echoed = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(ScramError::Malformed("no r=nonce"))?;
        // librdkafka before 2.6.1 (Debian's kcat, rsyslog, Filebeat-era C clients) echoes the client nonce
        // twice (librdkafka#4895); Kafka 3.8.1–3.9 accept that too. The proof is computed over what was
        // echoed, so it still binds this exchange's fresh server nonce.
        if echoed != nonce && echoed.strip_prefix(client_nonce.as_str()) != Some(nonce.as_str()) {
            return Err(ScramError::InvalidCredentials);
        }
        let proof = B64.decode(proof).map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let m = self.mechanism;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
        if !bool::from(m.hash(&client_key).ct_eq(&credential.stored_key)) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// One SCRAM exchange driven by untrusted bytes (`client-first`, 0xFF, `client-final`), for the fuzz
/// target: it must fail cleanly, never panic.
#[doc(hidden)]
pub fn fuzz_exchange(data: &[u8]) {
    let (first, last) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(parsed) = ScramServer::parse_client_first(first) else { return };
    let credential = ScramCredential::from_salted_password(ScramMechanism::Sha256, b"salted", b"salt".to_vec(), 4096);
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    if server.server_first(parsed, credential).is_ok() {
        let _ = server.client_final(last);
    }
}

/// RFC 5802 saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn unescape_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's side of RFC 5802, to drive the server in tests.
    fn client_final(m: ScramMechanism, password: &str, client_first_bare: &str, server_first: &str) -> String {
        client_final_echoing(m, password, client_first_bare, server_first, "")
    }

    /// `echo_prefix` is put before the nonce the client echoes (old librdkafka repeats its own nonce).
    fn client_final_echoing(
        m: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        echo_prefix: &str,
    ) -> String {
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = format!("{echo_prefix}{}", fields[0].strip_prefix("r=").unwrap());
        let salt = B64.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
        let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
        let salted = m.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    fn exchange(m: ScramMechanism, stored_password: &str, password: &str) -> Result<Vec<u8>, ScramError> {
        let credential = ScramCredential::new(m, stored_password.as_bytes(), MIN_ITERATIONS);
        let mut server = ScramServer::new(m);
        let first = ScramServer::parse_client_first(b"n,,n=al=3Dice,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
        assert_eq!(first.username, "al=ice");
        let server_first = String::from_utf8(server.server_first(first, credential).unwrap()).unwrap();
        assert!(server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
        let final_message = client_final(m, password, "n=al=3Dice,r=fyko+d2lbbFgONRv9qkxdawL", &server_first);
        server.client_final(final_message.as_bytes())
    }

    #[test]
    fn right_password_passes_and_wrong_one_fails_for_both_hashes() {
        for m in ScramMechanism::ALL {
            assert!(exchange(m, "s3cret", "s3cret").unwrap().starts_with(b"v="));
            assert_eq!(exchange(m, "s3cret", "guess"), Err(ScramError::InvalidCredentials));
        }
    }

    #[test]
    fn old_librdkafka_doubled_nonce_is_accepted_and_other_nonces_are_not() {
        let m = ScramMechanism::Sha512;
        for (prefix, ok) in [("cnonce", true), ("other", false)] {
            let credential = ScramCredential::new(m, b"pw", MIN_ITERATIONS);
            let mut server = ScramServer::new(m);
            let first = ScramServer::parse_client_first(b"n,,n=u,r=cnonce").unwrap();
            let server_first = String::from_utf8(server.server_first(first, credential).unwrap()).unwrap();
            let last = client_final_echoing(m, "pw", "n=u,r=cnonce", &server_first, prefix);
            assert_eq!(server.client_final(last.as_bytes()).is_ok(), ok, "{prefix}");
        }
    }

    #[test]
    fn plain_passwords_check_against_stored_keys() {
        let c = ScramCredential::new(ScramMechanism::Sha512, b"pw", MIN_ITERATIONS);
        assert!(c.verify_password(ScramMechanism::Sha512, b"pw"));
        assert!(!c.verify_password(ScramMechanism::Sha512, b"pw2"));
        assert!(!format!("{c:?}").contains("stored"));
    }

    #[test]
    fn rfc7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil".
        let m = ScramMechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let c = ScramCredential::with_salt(m, b"pencil", salt, 4096);
        let mut server = ScramServer::new(m);
        let first = ScramServer::parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        server.state = State::AwaitingClientFinal {
            gs2_header: first.gs2_header,
            client_first_bare: first.client_first_bare,
            server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .into(),
            client_nonce: "rOprNGfwEbeRWgbNEkqO".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            credential: c,
        };
        let reply = server
            .client_final(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .unwrap();
        assert_eq!(reply, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn fuzz_entry_survives_odd_input() {
        for data in [&b""[..], b"n,,n=a,r=b\xffc=biws,r=b,p=", b"n,,n=a,r=b\xff,p=\xff\xff", b"\xff\xff"] {
            fuzz_exchange(data);
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            &b""[..],
            b"x,,n=a,r=b",
            b"p=tls-unique,,n=a,r=b",
            b"n,,r=b",
            b"n,,n=a",
            b"n,,n=a=zz,r=b",
            b"n,a=b,n=a,r=c",
        ] {
            assert!(ScramServer::parse_client_first(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(server.client_final(b"c=biws,r=x,p=AAAA").is_err());
    }
}
