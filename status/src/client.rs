//! Fetching `/status` from a running appliance: one HTTP/1.1 GET over a plain TCP connection (the admin
//! endpoint listens on loopback by default and speaks only this).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::report::StatusReport;

/// `address` is `host:port` or `http://host:port`.
pub async fn fetch(address: &str) -> Result<StatusReport> {
    let host = address.trim_start_matches("http://").trim_end_matches('/');
    let exchange = async {
        let mut socket = TcpStream::connect(host).await?;
        socket
            .write_all(format!("GET /status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        socket.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .with_context(|| format!("{host} did not answer within 5 s"))?
        .with_context(|| {
            format!("cannot reach the admin endpoint at {host}; is `logpipe run` running with [admin] there?")
        })?;
    let text = String::from_utf8_lossy(&response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { bail!("{host} sent no HTTP response") };
    if head.starts_with("HTTP/1.1 401") {
        bail!(
            "{host} needs authentication (admin.auth_token_file or basic auth); `logpipe status` reads only an \
             open loopback endpoint: fetch /status with the token instead (curl -H 'Authorization: Bearer …')"
        );
    }
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{host} answered {}", head.lines().next().unwrap_or(""));
    }
    serde_json::from_str(body).with_context(|| format!("{host} sent a status this version cannot read"))
}
