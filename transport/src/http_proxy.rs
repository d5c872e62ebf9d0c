//! Reaching the broker through an HTTP CONNECT proxy, as spokes behind corporate proxies must:
//! a TCP connection to the proxy, `CONNECT host:port`, and — once the proxy answers 200 — the
//! TLS handshake with the broker inside the tunnel, so the proxy sees only ciphertext.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest proxy response head we read before giving up on a misbehaving proxy.
const MAX_RESPONSE_HEAD: usize = 16 << 10;

/// An HTTP proxy: `host:port`, with optional basic credentials.
#[derive(Clone)]
pub struct HttpProxy {
    pub address: String,
    pub basic_auth: Option<(String, String)>,
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.basic_auth.as_ref().map(|(user, _)| user.as_str());
        f.debug_struct("HttpProxy")
            .field("address", &self.address)
            .field("user", &user)
            .finish()
    }
}

impl HttpProxy {
    /// Parses `http://[user:password@]host:port` (the `HTTPS_PROXY` form) or a bare
    /// `host:port`.
    pub fn parse(url: &str) -> Option<Self> {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or(url)
            .trim_end_matches('/');
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, rest),
        };
        if address.is_empty() || !address.contains(':') {
            return None;
        }
        let basic_auth = credentials
            .and_then(|c| c.split_once(':'))
            .map(|(u, p)| (u.to_owned(), p.to_owned()));
        Some(Self {
            address: address.to_owned(),
            basic_auth,
        })
    }
}

/// A TCP stream to `target` (`host:port`) tunnelled through `proxy`.
pub async fn connect_via(proxy: &HttpProxy, target: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(&proxy.address).await?;
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, password)) = &proxy.basic_auth {
        let token = STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;

    // Read the response head byte by byte: nothing of the tunnel may be consumed here.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(proxy_error(proxy, "response head too long"));
        }
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 {
            return Err(proxy_error(
                proxy,
                "closed the connection before answering CONNECT",
            ));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(proxy_error(
            proxy,
            &format!("refused CONNECT {target}: {status_line}"),
        ));
    }
    Ok(stream)
}

fn proxy_error(proxy: &HttpProxy, detail: &str) -> std::io::Error {
    std::io::Error::other(format!("HTTP proxy {}: {detail}", proxy.address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_with_and_without_credentials() {
        let plain = HttpProxy::parse("http://proxy.corp:3128/").unwrap();
        assert_eq!(
            (plain.address.as_str(), plain.basic_auth),
            ("proxy.corp:3128", None)
        );
        let with_user = HttpProxy::parse("http://alice:s3cret@proxy:8080").unwrap();
        assert_eq!(
            with_user.basic_auth,
            Some(("alice".into(), "s3cret".into()))
        );
        assert!(
            !format!("{with_user:?}").contains("s3cret"),
            "the password never shows in logs"
        );
        assert!(HttpProxy::parse("http://").is_none());
        assert!(HttpProxy::parse("proxy-without-port").is_none());
    }

    #[tokio::test]
    async fn a_refusing_proxy_is_reported_with_its_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
        });
        let proxy = HttpProxy {
            address: address.clone(),
            basic_auth: None,
        };
        let err = connect_via(&proxy, "hub:8090")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("HTTP proxy {address}: refused CONNECT hub:8090: HTTP/1.1 403 Forbidden")
        );
    }
}
