//! Which config keys hold secrets, so that loading a pipeline file never prints their values.

/// Whether the config key `key` holds a secret: a password, API key, token, client secret or private key.
/// `key` is a dotted path (`agent.output.sasl.password`, `indexer.output.elasticsearch.api_key`) or a
/// librdkafka property (`ssl.key.password`, `ssl.key.pem`, `sasl.oauthbearer.client.secret`). A key that
/// names where a secret is kept (`sasl.password_file`, `admin.auth_token_file`, `ssl.key.location`) does not
/// hold one.
pub fn names_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let words: Vec<&str> = key.split(['.', '_', '-']).collect();
    if matches!(words.last(), Some(&("file" | "location"))) {
        return false;
    }
    words.iter().any(|word| matches!(*word, "password" | "passwd" | "secret" | "token" | "apikey" | "credentials"))
        || words.windows(2).any(|pair| matches!(pair, ["api", "key"] | ["key", "pem"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_keys_of_a_pipeline_file_are_known() {
        for key in [
            "agent.output.sasl.password",
            "indexer.input.sasl.password",
            "indexer.output.elasticsearch.password",
            "indexer.output.elasticsearch.api_key",
            "agent.output.librdkafka.sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "LOGPIPE_INDEXER__OUTPUT__ELASTICSEARCH__API_KEY",
        ] {
            assert!(names_secret(key), "{key}");
        }
        for key in [
            "agent.output.sasl.password_file",
            "agent.output.sasl.username",
            "admin.auth_token_file",
            "admin.auth_basic_password_file",
            "ssl.key.location",
            "indexer.output.elasticsearch.ca_trusted_fingerprint",
            "broker.log_dirs",
        ] {
            assert!(!names_secret(key), "{key}");
        }
    }
}
