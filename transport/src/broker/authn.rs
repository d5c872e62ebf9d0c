//! Authentication on the request's headers and TLS session, before any body is read: a tower
//! layer in front of the gRPC service. A peer without a valid client certificate or bearer
//! token is answered `Unauthenticated` at once, so it can make the broker hold no more than
//! one flow-control window of its bytes per stream, and never decode a message of its.
//!
//! The identity found travels to the service in the request's extensions ([`Authenticated`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures::future::BoxFuture;
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::Broker;
use crate::broker::Identity;
use crate::tls;

/// Who a request was authenticated as, and until when its credential is valid (a client
/// certificate's `notAfter`; `None` for tokens, which the authenticator re-checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub identity: Identity,
    pub valid_until: Option<SystemTime>,
    pub peer: Option<IpAddr>,
}

/// The layer [`super::serve`] puts in front of the broker's service.
#[derive(Debug, Clone)]
pub(super) struct AuthenticateFirst {
    pub(super) broker: Broker,
}

impl<S> tower::Layer<S> for AuthenticateFirst {
    type Service = AuthenticateFirstService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthenticateFirstService {
            inner,
            broker: self.broker.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct AuthenticateFirstService<S> {
    inner: S,
    broker: Broker,
}

impl<S, B> tower::Service<http::Request<B>> for AuthenticateFirstService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service that was polled ready is the one to call (tower's clone-and-swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let broker = self.broker.clone();
        Box::pin(async move {
            let connection = request
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .cloned();
            match authenticate(&broker, request.headers(), connection.as_ref()).await {
                Ok(authenticated) => {
                    request.extensions_mut().insert(authenticated);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// A client certificate's identity (checked for expiry: a connection may outlive its
/// certificate), else a bearer token's. Token reviews of a peer that keeps presenting unknown
/// tokens are limited per address, so a flood of random tokens cannot hold the reviews of real
/// joins up behind it.
pub(super) async fn authenticate(
    broker: &Broker,
    headers: &http::HeaderMap,
    connection: Option<&TlsConnectInfo<TcpConnectInfo>>,
) -> Result<Authenticated, Status> {
    let peer = connection.and_then(|c| c.get_ref().remote_addr().map(|a| a.ip()));
    if let Some(leaf) = connection
        .and_then(TlsConnectInfo::peer_certs)
        .as_deref()
        .and_then(|certs| certs.first().cloned())
    {
        let identity =
            tls::cert_identity(&leaf).map_err(|e| Status::unauthenticated(e.to_string()))?;
        if identity
            .not_after
            .is_some_and(|not_after| not_after <= SystemTime::now())
        {
            return Err(Status::unauthenticated(format!(
                "the client certificate of {} has expired",
                identity.user
            )));
        }
        return Ok(Authenticated {
            identity: Identity {
                user: identity.user,
                groups: identity.groups,
            },
            valid_until: identity.not_after,
            peer,
        });
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let (Some(token), Some(tokens)) = (bearer, &broker.inner.tokens) else {
        return Err(Status::unauthenticated(
            "no client certificate and no bearer token",
        ));
    };
    let tokens: Arc<dyn super::TokenAuthenticator> = Arc::clone(tokens);
    if !tokens.knows(token) {
        let key = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !broker.inner.token_reviews_per_peer.try_take(&key) {
            tracing::debug!(?peer, "token reviews of this peer over its rate");
            return Err(Status::unavailable(
                "too many token authentications from this address; retry later",
            ));
        }
    }
    let identity = tokens
        .authenticate(token)
        .await
        .map_err(Status::unauthenticated)?;
    Ok(Authenticated {
        identity,
        valid_until: None,
        peer,
    })
}
