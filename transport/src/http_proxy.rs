//! Reaching the broker through an HTTP CONNECT proxy, as spokes behind corporate proxies must:
//! a TCP connection to the proxy (with TLS to the proxy itself for an `https://` proxy),
//! `CONNECT host:port`, and — once the proxy answers 200 — the TLS handshake with the broker
//! inside the tunnel, so the proxy sees only ciphertext.
//!
//! Which proxy, as Go's `net/http` chooses one for an `https` URL
//! (`golang.org/x/net/http/httpproxy`), so an agent set up for OCM's Go agents behaves the same:
//! an explicit proxy URL wins; otherwise `HTTPS_PROXY` (or `https_proxy`), unless `NO_PROXY` (or
//! `no_proxy`) excludes the broker's host — by name (and its subdomains), `.suffix`, IP address,
//! CIDR, optionally with a port, or `*` for everything — or the host is `localhost` or a
//! loopback address. Proxy credentials (the URL's userinfo, sent as `Proxy-Authorization:
//! Basic`) never appear in `Debug`, `Display`, errors or logs.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

/// Largest proxy response head we read before giving up on a misbehaving proxy.
const MAX_RESPONSE_HEAD: usize = 16 << 10;

/// An HTTP proxy: `host:port`, with optional basic credentials, reached over plain TCP (an
/// `http://` proxy) or TLS (`https://`).
#[derive(Clone)]
pub struct HttpProxy {
    /// `host:port` of the proxy.
    pub address: String,
    /// Basic credentials from the URL's userinfo (percent-decoded); never shown.
    pub basic_auth: Option<(String, String)>,
    /// TLS to the proxy itself (an `https://` proxy); `None` for a plain `http://` proxy.
    pub tls: Option<ProxyTls>,
}

/// TLS to an `https://` proxy: whom to trust and the name to verify.
#[derive(Clone)]
pub struct ProxyTls {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for ProxyTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProxy")
            .field("address", &self.address)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|_| "<redacted>"),
            )
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The URL without its credentials: `http://[redacted]@proxy:3128` when it has some.
impl std::fmt::Display for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let credentials = if self.basic_auth.is_some() {
            "[redacted]@"
        } else {
            ""
        };
        write!(f, "{scheme}://{credentials}{}", self.address)
    }
}

/// Why a proxy setting cannot be used. Never holds the credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("proxy URL {url}: {why}")]
    Invalid { url: String, why: String },
    #[error(
        "a proxy CA is only used with an https:// proxy (TLS to the proxy); {url} is a plain HTTP proxy"
    )]
    CaWithoutTls { url: String },
    #[error("proxy CA: {0}")]
    Ca(String),
}

impl HttpProxy {
    /// Parses `http://[user:password@]host:port` (the `HTTPS_PROXY` form) or a bare
    /// `host:port`; `None` for anything else (see [`HttpProxy::from_url`] for why).
    pub fn parse(url: &str) -> Option<Self> {
        Self::from_url(url, None).ok().filter(|p| p.tls.is_none())
    }

    /// Parses a proxy URL as Go does: `http://` or `https://`, or no scheme (then `http://`);
    /// userinfo as basic credentials; the port defaults to 80 (`http`) or 443 (`https`). An
    /// `https://` proxy is reached over TLS trusting `ca_pem` (PEM, one or more certificates),
    /// else the system's roots; `ca_pem` with an `http://` proxy is refused, since nothing would
    /// use it.
    pub fn from_url(url: &str, ca_pem: Option<&str>) -> Result<Self, ProxyError> {
        let invalid = |why: &str| ProxyError::Invalid {
            url: redact(url),
            why: why.to_owned(),
        };
        let trimmed = url.trim();
        let (tls, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" => (false, rest),
                "https" => (true, rest),
                other => {
                    return Err(invalid(&format!(
                        "scheme {other:?} is not supported (use http:// or https://)"
                    )));
                }
            },
            None => (false, trimmed),
        };
        // The authority ends at the first '/', '?' or '#'.
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let basic_auth = userinfo
            .map(|info| {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                match (percent_decode(user), percent_decode(password)) {
                    (Some(user), Some(password)) => Ok((user, password)),
                    _ => Err(invalid("its credentials are not valid percent-encoding")),
                }
            })
            .transpose()?;
        let (host, port) = split_host_port(host_port).ok_or_else(|| invalid("no valid host"))?;
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid("the port is not a number from 1 to 65535"))?,
            None if tls => 443,
            None => 80,
        };
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let tls = if tls {
            Some(ProxyTls::new(&host, ca_pem)?)
        } else {
            if ca_pem.is_some() {
                return Err(ProxyError::CaWithoutTls { url: redact(url) });
            }
            None
        };
        Ok(Self {
            address,
            basic_auth,
            tls,
        })
    }
}

impl ProxyTls {
    fn new(host: &str, ca_pem: Option<&str>) -> Result<Self, ProxyError> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ProxyError::Ca(e.to_string()))?;
                if certs.is_empty() {
                    return Err(ProxyError::Ca("no CERTIFICATE block".to_owned()));
                }
                for cert in certs {
                    roots.add(cert).map_err(|e| ProxyError::Ca(e.to_string()))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(ProxyError::Ca(
                        "no CA given for the https:// proxy and no system CA found".to_owned(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ProxyError::Ca(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name =
            ServerName::try_from(host.to_owned()).map_err(|e| ProxyError::Invalid {
                url: host.to_owned(),
                why: format!("not a host name for TLS: {e}"),
            })?;
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// `host` and its port, if any, from `host[:port]` or `[v6][:port]`; `None` without a host.
fn split_host_port(text: &str) -> Option<(String, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        return (!host.is_empty()).then(|| (host.to_owned(), port));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    (!host.is_empty() && !host.contains(':')).then(|| (host.to_ascii_lowercase(), port))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A proxy URL as it may be shown: any userinfo replaced.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}[redacted]@{}", &rest[at + 1..]),
        None => format!("{scheme}{rest}"),
    }
}

/// The environment variables Go reads for an `https` URL's proxy (the binaries read them and
/// pass them here).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// `HTTPS_PROXY`, else `https_proxy` (the first that is set and not empty).
    pub https_proxy: Option<String>,
    /// `NO_PROXY`, else `no_proxy`.
    pub no_proxy: Option<String>,
}

impl std::fmt::Debug for ProxyEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyEnv")
            .field("https_proxy", &self.https_proxy.as_deref().map(redact))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyEnv {
    /// Reads the variables through `get` (e.g. `|name| std::env::var(name).ok()`), the upper
    /// case name first, as Go does.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let any = |names: [&str; 2]| {
            names
                .into_iter()
                .find_map(|name| get(name).filter(|v| !v.is_empty()))
        };
        Self {
            https_proxy: any(["HTTPS_PROXY", "https_proxy"]),
            no_proxy: any(["NO_PROXY", "no_proxy"]),
        }
    }
}

/// Where the chosen proxy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxySource {
    /// The explicit setting (a flag): used for every host, whatever `NO_PROXY` says, as a
    /// kubeconfig's `proxy-url`.
    Explicit,
    /// `HTTPS_PROXY`/`https_proxy`, for a host `NO_PROXY` does not exclude.
    Environment,
}

/// The proxy URL to reach `target` (`host:port`, the broker) through, if any: `explicit`
/// wins; otherwise the environment's, unless `NO_PROXY` or Go's loopback rule exempts
/// `target`.
pub fn choose<'a>(
    explicit: Option<&'a str>,
    env: &'a ProxyEnv,
    target: &str,
) -> Option<(&'a str, ProxySource)> {
    if let Some(url) = explicit.filter(|u| !u.trim().is_empty()) {
        return Some((url, ProxySource::Explicit));
    }
    let url = env.https_proxy.as_deref()?;
    let no_proxy = NoProxy::parse(env.no_proxy.as_deref().unwrap_or_default());
    no_proxy
        .use_proxy(target)
        .then_some((url, ProxySource::Environment))
}

/// `NO_PROXY`, parsed as Go parses it (best effort: entries it cannot read are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    /// IP address entries, with the port they are limited to.
    ips: Vec<(IpAddr, Option<String>)>,
    cidrs: Vec<(IpAddr, u8)>,
    /// Domain entries as `.suffix`, with their port, and whether the bare name matches too.
    domains: Vec<(String, Option<String>, bool)>,
}

impl NoProxy {
    pub fn parse(text: &str) -> Self {
        let mut parsed = Self::default();
        for entry in text.split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                return Self {
                    all: true,
                    ..Self::default()
                };
            }
            if let Some((ip, bits)) = entry.split_once('/') {
                if let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>())
                    && bits <= max_prefix(ip)
                {
                    parsed.cidrs.push((ip, bits));
                }
                continue;
            }
            let (host, port) = match split_host_port(&entry) {
                Some((host, Some(port))) if !port.is_empty() => (host, Some(port.to_owned())),
                Some((host, _)) => (host, None),
                // No host before the port: malformed, ignored as Go ignores it.
                None if entry.starts_with(':') => continue,
                // A bare IPv6 address (`::1`) has colons and no brackets.
                None => (entry.clone(), None),
            };
            if let Ok(ip) = host.parse::<IpAddr>() {
                parsed.ips.push((ip, port));
                continue;
            }
            let host = host.strip_prefix('*').unwrap_or(&host).to_owned();
            if host.is_empty() {
                continue;
            }
            let (suffix, match_host) = match host.strip_prefix('.') {
                Some(_) => (host.clone(), false),
                None => (format!(".{host}"), true),
            };
            parsed.domains.push((suffix, port, match_host));
        }
        parsed
    }

    /// Whether a connection to `target` (`host:port`) goes through the environment's proxy.
    pub fn use_proxy(&self, target: &str) -> bool {
        let Some((host, port)) = split_host_port(target) else {
            return true;
        };
        let port = port.unwrap_or("443");
        if host == "localhost" {
            return false;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return false;
        }
        if self.all {
            return false;
        }
        let port_matches = |wanted: &Option<String>| wanted.as_deref().is_none_or(|p| p == port);
        if let Some(ip) = ip
            && (self
                .ips
                .iter()
                .any(|(listed, wanted)| *listed == ip && port_matches(wanted))
                || self
                    .cidrs
                    .iter()
                    .any(|(network, bits)| in_network(ip, *network, *bits)))
        {
            return false;
        }
        let excluded = self.domains.iter().any(|(suffix, wanted, match_host)| {
            (host.ends_with(suffix.as_str()) || (*match_host && host == suffix[1..]))
                && port_matches(wanted)
        });
        !excluded
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn in_network(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    let (ip, network, width) = match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) => (
            u128::from(u32::from(ip)),
            u128::from(u32::from(network)),
            32u32,
        ),
        (IpAddr::V6(ip), IpAddr::V6(network)) => (u128::from(ip), u128::from(network), 128),
        (IpAddr::V6(ip), IpAddr::V4(network)) => match ip.to_ipv4_mapped() {
            Some(ip) => (
                u128::from(u32::from(ip)),
                u128::from(u32::from(network)),
                32,
            ),
            None => return false,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => return false,
    };
    let shift = width - u32::from(bits);
    if shift >= width {
        return true;
    }
    (ip >> shift) == (network >> shift)
}

/// A connection to the broker: direct, through an `http://` proxy's tunnel, or through an
/// `https://` proxy's tunnel (TLS to the proxy, the broker's TLS inside).
#[derive(Debug)]
pub enum ProxyStream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A stream to `target` (`host:port`): through `proxy` if there is one, else direct.
pub async fn connect(proxy: Option<&HttpProxy>, target: &str) -> std::io::Result<ProxyStream> {
    match proxy {
        Some(proxy) => connect_via(proxy, target).await,
        None => Ok(ProxyStream::Tcp(TcpStream::connect(target).await?)),
    }
}

/// A stream to `target` (`host:port`) tunnelled through `proxy`.
pub async fn connect_via(proxy: &HttpProxy, target: &str) -> std::io::Result<ProxyStream> {
    tracing::debug!(%proxy, %target, "connecting through the HTTP proxy");
    let tcp = TcpStream::connect(&proxy.address).await?;
    let mut stream = match &proxy.tls {
        None => ProxyStream::Tcp(tcp),
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
            let stream = connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| proxy_error(proxy, &format!("TLS handshake with the proxy: {e}")))?;
            ProxyStream::Tls(Box::new(stream))
        }
    };
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, password)) = &proxy.basic_auth {
        let token = STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;

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
        for shown in [format!("{with_user:?}"), with_user.to_string()] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("alice"),
                "the credentials never show in logs: {shown}"
            );
        }
        assert_eq!(with_user.to_string(), "http://[redacted]@proxy:8080");
        assert!(HttpProxy::parse("http://").is_none());
        assert_eq!(
            HttpProxy::parse("proxy-without-port").unwrap().address,
            "proxy-without-port:80",
            "Go's default port"
        );
        assert_eq!(
            HttpProxy::parse("[::1]:3128").unwrap().address,
            "[::1]:3128"
        );
    }

    #[test]
    fn credentials_are_percent_decoded_and_never_in_errors() {
        let proxy =
            HttpProxy::from_url("http://bob%40corp:p%3Ass%40w0rd@proxy:3128", None).unwrap();
        assert_eq!(
            proxy.basic_auth,
            Some(("bob@corp".into(), "p:ss@w0rd".into()))
        );
        let err = HttpProxy::from_url("socks5://bob:hunter2@proxy:1080", None).unwrap_err();
        assert!(
            !err.to_string().contains("hunter2") && !err.to_string().contains("bob"),
            "{err}"
        );
        assert!(err.to_string().contains("socks5"), "{err}");
        let err = HttpProxy::from_url("http://bob:hunter2@proxy:99999", None).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(
            redact("https://u:p@proxy:3128/x"),
            "https://[redacted]@proxy:3128/x"
        );
        assert_eq!(redact("proxy:3128"), "proxy:3128");
    }

    #[test]
    fn a_proxy_ca_is_for_https_proxies_only() {
        let err = HttpProxy::from_url("http://proxy:3128", Some("pem")).unwrap_err();
        assert!(matches!(err, ProxyError::CaWithoutTls { .. }), "{err}");
        let err = HttpProxy::from_url("https://proxy:3128", Some("not a pem")).unwrap_err();
        assert!(matches!(err, ProxyError::Ca(_)), "{err}");
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["proxy".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let https = HttpProxy::from_url("https://proxy", Some(&ca)).unwrap();
        assert_eq!(https.address, "proxy:443");
        assert!(https.tls.is_some());
        assert_eq!(https.to_string(), "https://proxy:443");
    }

    #[test]
    fn the_explicit_proxy_wins_over_the_environment() {
        let env = ProxyEnv::from_lookup(|name| match name {
            "HTTPS_PROXY" => Some("http://env:3128".into()),
            "https_proxy" => Some("http://lower:3128".into()),
            "no_proxy" => Some("hub.corp".into()),
            _ => None,
        });
        assert_eq!(env.https_proxy.as_deref(), Some("http://env:3128"));
        assert_eq!(env.no_proxy.as_deref(), Some("hub.corp"));
        assert_eq!(
            choose(Some("http://flag:1"), &env, "hub.corp:8090"),
            Some(("http://flag:1", ProxySource::Explicit)),
            "the flag is used even for a host NO_PROXY names"
        );
        assert_eq!(choose(None, &env, "hub.corp:8090"), None);
        assert_eq!(
            choose(None, &env, "hub.example.com:8090"),
            Some(("http://env:3128", ProxySource::Environment))
        );
        let lower = ProxyEnv::from_lookup(|name| {
            (name == "https_proxy").then(|| "http://lower:3128".to_owned())
        });
        assert_eq!(lower.https_proxy.as_deref(), Some("http://lower:3128"));
        let empty = ProxyEnv::from_lookup(|name| (name == "HTTPS_PROXY").then(String::new));
        assert_eq!(empty.https_proxy, None, "an empty variable is unset");
        assert_eq!(choose(None, &ProxyEnv::default(), "hub:8090"), None);
    }

    #[test]
    fn no_proxy_matches_hosts_suffixes_ips_cidrs_and_star_as_go_does() {
        let no_proxy = NoProxy::parse(
            "corp.example, .internal, *.star.io, 10.1.2.3, 192.168.0.0/16, fd00::/8, \
             ported.io:8443, [2001:db8::1]:9000, 172.16.0.9:7000",
        );
        let direct = |target: &str| !no_proxy.use_proxy(target);
        // A domain name matches itself and its subdomains.
        assert!(direct("corp.example:8090"));
        assert!(direct("hub.corp.example:8090"));
        assert!(!direct("notcorp.example:8090"));
        // A leading dot: subdomains only; `*.` is the same as `.`.
        assert!(direct("hub.internal:8090"));
        assert!(!direct("internal:8090"));
        assert!(direct("a.star.io:1"));
        assert!(!direct("star.io:1"));
        // IP addresses and networks.
        assert!(direct("10.1.2.3:8090"));
        assert!(!direct("10.1.2.4:8090"));
        assert!(direct("192.168.44.5:8090"));
        assert!(!direct("192.169.0.1:8090"));
        assert!(direct("[fd12::5]:8090"));
        // With a port, only that port.
        assert!(direct("ported.io:8443"));
        assert!(!direct("ported.io:8090"));
        assert!(direct("[2001:db8::1]:9000"));
        assert!(!direct("[2001:db8::1]:9001"));
        assert!(direct("172.16.0.9:7000"));
        assert!(!direct("172.16.0.9:7001"));
        // Case does not matter.
        assert!(direct("HUB.Corp.Example:8090"));
        // Go never proxies localhost and loopback addresses from the environment.
        let none = NoProxy::parse("");
        assert!(!none.use_proxy("localhost:8090"));
        assert!(!none.use_proxy("127.0.0.1:8090"));
        assert!(!none.use_proxy("[::1]:8090"));
        assert!(none.use_proxy("hub.example.com:8090"));
        // `*` turns the proxy off for everything.
        assert!(!NoProxy::parse("foo, *").use_proxy("hub.example.com:8090"));
        // Garbage is ignored, as Go ignores it.
        let garbage = NoProxy::parse(",, 300.1.1.1/40, :80");
        assert!(garbage.use_proxy("hub.example.com:8090"));
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
            tls: None,
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

    #[tokio::test]
    async fn basic_credentials_are_sent_in_the_connect_request() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                socket.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            socket
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let proxy = HttpProxy::from_url(&format!("http://alice:s3cret@{address}"), None).unwrap();
        connect_via(&proxy, "hub:8090").await.unwrap();
        let head = seen.await.unwrap();
        assert!(head.starts_with("CONNECT hub:8090 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!(
                "Proxy-Authorization: Basic {}\r\n",
                STANDARD.encode("alice:s3cret")
            )),
            "{head}"
        );
    }
}
