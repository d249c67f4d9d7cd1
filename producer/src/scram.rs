//! SCRAM-SHA-256 and SCRAM-SHA-512, client side (RFC 5802, RFC 7677; Kafka's KIP-84), for SASL over a
//! broker connection.
//!
//! Three messages: client-first names the user and a fresh nonce; the server's first message adds its
//! nonce, the salt and the iteration count; client-final proves knowledge of the password without sending
//! it. The server's final message carries its own signature, which only a server holding the user's
//! credential can make: it is verified, so a fake broker cannot pass for the real one. No channel binding
//! (`n,,`), as Kafka clients do.
//!
//! The password is never logged nor put in an error; `ScramClient` has no `Debug` for that reason.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};

/// RFC 7677 and Kafka: fewer iterations than this make a credential too cheap to brute-force.
const MIN_ITERATIONS: u32 = 4096;

/// PBKDF2 runs on this host for as many iterations as the server asks; a hostile server asking for
/// billions would pin a CPU. Kafka itself stores at most 16384.
const MAX_ITERATIONS: u32 = 1_000_000;

/// The hash a SCRAM mechanism is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => hmac_with::<Hmac<Sha256>>(key, data).finalize().into_bytes().to_vec(),
            Self::Sha512 => hmac_with::<Hmac<Sha512>>(key, data).finalize().into_bytes().to_vec(),
        }
    }

    /// Whether `signature` is HMAC(key, data), compared in constant time.
    fn hmac_matches(self, key: &[u8], data: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Sha256 => hmac_with::<Hmac<Sha256>>(key, data).verify_slice(signature).is_ok(),
            Self::Sha512 => hmac_with::<Hmac<Sha512>>(key, data).verify_slice(signature).is_ok(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec(),
            Self::Sha512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec(),
        }
    }
}

fn hmac_with<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> M {
    let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac
}

/// What went wrong in an exchange. None of these carry the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScramError {
    #[error("malformed SCRAM message from the broker: {0}")]
    Malformed(&'static str),
    #[error("the broker's nonce does not extend the client's (a replayed or forged exchange)")]
    NonceMismatch,
    #[error("the broker asks for {0} PBKDF2 iterations; at least {MIN_ITERATIONS} are required")]
    TooFewIterations(u32),
    #[error("the broker asks for {0} PBKDF2 iterations; more than {MAX_ITERATIONS} are refused")]
    TooManyIterations(u32),
    #[error("the broker refused the proof: {0}")]
    Refused(String),
    #[error(
        "the broker's SCRAM signature is wrong: it does not hold this user's credential (not the expected broker?)"
    )]
    BadServerSignature,
}

/// One exchange, before the server's first message.
pub(crate) struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    nonce: String,
    /// `n=<saslname>,r=<nonce>`: client-first without the GS2 header, part of the signed AuthMessage.
    client_first_bare: String,
}

impl ScramClient {
    /// Starts an exchange with a fresh random nonce.
    pub(crate) fn new(mechanism: ScramMechanism, username: &str, password: &str) -> Self {
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        // Base64 is printable and has no ',', as the nonce must.
        Self::with_nonce(mechanism, username, password, B64.encode(bytes))
    }

    fn with_nonce(mechanism: ScramMechanism, username: &str, password: &str, nonce: String) -> Self {
        let client_first_bare = format!("n={},r={nonce}", sasl_name(username));
        Self { mechanism, password: password.to_owned(), nonce, client_first_bare }
    }

    /// client-first-message: `n,,n=<user>,r=<nonce>`.
    pub(crate) fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Answers server-first with client-final (with the proof), and returns what server-final must
    /// carry. Runs PBKDF2: thousands of HMACs, so call it off the async workers.
    pub(crate) fn client_final(self, server_first: &[u8]) -> Result<(Vec<u8>, ServerFinalCheck), ScramError> {
        let server_first = std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if server_first.starts_with("m=") {
            return Err(ScramError::Malformed("mandatory extension (m=) not supported"));
        }
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attribute in server_first.split(',') {
            if let Some(value) = attribute.strip_prefix("r=") {
                nonce = Some(value);
            } else if let Some(value) = attribute.strip_prefix("s=") {
                salt = Some(B64.decode(value).map_err(|_| ScramError::Malformed("salt is not base64"))?);
            } else if let Some(value) = attribute.strip_prefix("i=") {
                iterations = Some(value.parse::<u32>().map_err(|_| ScramError::Malformed("bad iteration count"))?);
            }
        }
        let nonce = nonce.ok_or(ScramError::Malformed("no nonce (r=)"))?;
        let salt = salt.ok_or(ScramError::Malformed("no salt (s=)"))?;
        let iterations = iterations.ok_or(ScramError::Malformed("no iteration count (i=)"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        if iterations < MIN_ITERATIONS {
            return Err(ScramError::TooFewIterations(iterations));
        }
        if iterations > MAX_ITERATIONS {
            return Err(ScramError::TooManyIterations(iterations));
        }

        let m = self.mechanism;
        // `c=biws` is base64 of the GS2 header `n,,`: no channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let client_signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&client_signature).map(|(k, s)| k ^ s).collect();
        let client_final = format!("{without_proof},p={}", B64.encode(proof)).into_bytes();
        let check = ServerFinalCheck {
            mechanism: m,
            server_key: m.hmac(&salted, b"Server Key"),
            auth_message: auth_message.into_bytes(),
        };
        Ok((client_final, check))
    }
}

/// What the server's final message must prove: that it knows ServerKey, so it holds the credential.
pub(crate) struct ServerFinalCheck {
    mechanism: ScramMechanism,
    server_key: Vec<u8>,
    auth_message: Vec<u8>,
}

impl ServerFinalCheck {
    /// Checks server-final (`v=<signature>`, or `e=<error>` when the server refused).
    pub(crate) fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let server_final = std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let first = server_final.split(',').next().unwrap_or_default();
        if let Some(error) = first.strip_prefix("e=") {
            return Err(ScramError::Refused(error.to_owned()));
        }
        let signature = first.strip_prefix("v=").ok_or(ScramError::Malformed("server-final has no v= or e="))?;
        let signature = B64.decode(signature).map_err(|_| ScramError::Malformed("signature is not base64"))?;
        if self.mechanism.hmac_matches(&self.server_key, &self.auth_message, &signature) {
            Ok(())
        } else {
            Err(ScramError::BadServerSignature)
        }
    }
}

/// RFC 5802's saslname: `=` and `,` escaped as `=3D` and `=2C`.
fn sasl_name(username: &str) -> String {
    username.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3.
    const SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    fn rfc_client() -> ScramClient {
        ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO".into())
    }

    #[test]
    fn rfc7677_test_vector() {
        let client = rfc_client();
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let (client_final, check) = client.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        check.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        // Another signature: a server that does not hold the credential.
        assert_eq!(
            check.verify(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap_err(),
            ScramError::BadServerSignature
        );
        assert_eq!(check.verify(b"e=invalid-proof").unwrap_err(), ScramError::Refused("invalid-proof".into()));
        assert!(matches!(check.verify(b"x=1"), Err(ScramError::Malformed(_))));
    }

    #[test]
    fn refuses_foreign_nonce_and_weak_or_excessive_iterations() {
        let foreign = "r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(rfc_client().client_final(foreign.as_bytes()).err(), Some(ScramError::NonceMismatch));
        let unextended = "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(rfc_client().client_final(unextended.as_bytes()).err(), Some(ScramError::NonceMismatch));
        let weak = SERVER_FIRST.replace("i=4096", "i=4095");
        assert_eq!(rfc_client().client_final(weak.as_bytes()).err(), Some(ScramError::TooFewIterations(4095)));
        let excessive = SERVER_FIRST.replace("i=4096", "i=4000000000");
        assert_eq!(
            rfc_client().client_final(excessive.as_bytes()).err(),
            Some(ScramError::TooManyIterations(4_000_000_000))
        );
        let no_salt = "r=rOprNGfwEbeRWgbNEkqOxyz,i=4096";
        assert!(matches!(rfc_client().client_final(no_salt.as_bytes()), Err(ScramError::Malformed(_))));
        let extension = format!("m=ext,{SERVER_FIRST}");
        assert!(matches!(rfc_client().client_final(extension.as_bytes()), Err(ScramError::Malformed(_))));
    }

    #[test]
    fn user_names_are_escaped_and_nonces_fresh() {
        let client = ScramClient::with_nonce(ScramMechanism::Sha512, "a=b,c", "pw", "n".into());
        assert_eq!(client.client_first(), b"n,,n=a=3Db=2Cc,r=n");
        let (one, two) =
            (ScramClient::new(ScramMechanism::Sha512, "u", "pw"), ScramClient::new(ScramMechanism::Sha512, "u", "pw"));
        assert_ne!(one.nonce, two.nonce);
        assert!(!one.nonce.contains(','));
    }
}
