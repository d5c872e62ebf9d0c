//! The webhook's HTTPS server: TLS 1.2 and 1.3 (what kube-apiserver's webhook client speaks),
//! HTTP/1.1, one task per connection, `POST /validate-work` with an AdmissionReview v1. A body
//! that is not one is answered `400` with the reason, and the server carries on.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use ocm_api::kube::Client;
use ocm_api::kube::api::PostParams;
use ocm_api::kube::core::DynamicObject;
use ocm_api::kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND,
};
use ocm_api::work::validation::Limits;
use ocm_transport::tls::ReloadableIdentity;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::clusters::{self, ClusterVerdict};
use super::registration::{
    BINDING_VALIDATE_PATH, CLUSTER_MUTATE_PATH, CLUSTER_VALIDATE_PATH, PATH,
};
use super::review::{self, Verdict};

/// What is asked of the webhook, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    ValidateWork,
    ValidateCluster,
    ValidateBinding,
    MutateCluster,
}

impl Route {
    fn of(path: &str) -> Option<Self> {
        match path {
            PATH => Some(Self::ValidateWork),
            CLUSTER_VALIDATE_PATH => Some(Self::ValidateCluster),
            BINDING_VALIDATE_PATH => Some(Self::ValidateBinding),
            CLUSTER_MUTATE_PATH => Some(Self::MutateCluster),
            _ => None,
        }
    }
}

/// The largest request body read: an AdmissionReview carries the object and, on update, the old
/// one, each up to etcd's 1.5 MiB, in JSON.
const MAX_BODY: usize = 8 << 20;
/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers that take longer are dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The webhook's TLS: TLS 1.3 and 1.2, HTTP/1.1, serving `identity`; no client certificate
/// asked for (the apiserver presents none unless configured to).
pub(crate) fn tls_config(identity: Arc<ReloadableIdentity>) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(identity);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What a request is judged with.
#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) client: Client,
    pub(crate) limits: Limits,
}

/// Accepts connections on `listener` until `cancel`; open connections end with it.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<ServerConfig>,
    handler: Handler,
    cancel: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "webhook accept failed");
                    // Out of file descriptors and the like: give it a moment.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, handler, cancel) = (acceptor.clone(), handler.clone(), cancel.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, %err, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "webhook TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler.handle(request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                () = cancel.cancelled() => {}
                served = connection => if let Err(err) = served {
                    tracing::debug!(%peer, %err, "webhook connection ended with an error");
                },
            }
        });
    }
}

impl Handler {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(route) = Route::of(request.uri().path()) else {
            return text(
                StatusCode::NOT_FOUND,
                format!(
                    "not found; the webhook serves {PATH}, {CLUSTER_VALIDATE_PATH}, {BINDING_VALIDATE_PATH} and {CLUSTER_MUTATE_PATH}"
                ),
            );
        };
        if request.method() != Method::POST {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{} takes a POST of an AdmissionReview",
                    request.uri().path()
                ),
            );
        }
        let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("an AdmissionReview larger than {MAX_BODY} bytes"),
                );
            }
            Err(err) => {
                return text(StatusCode::BAD_REQUEST, format!("reading the body: {err}"));
            }
        };
        let request = match parse(&body) {
            Ok(request) => request,
            Err(why) => {
                tracing::info!(%why, "malformed AdmissionReview refused");
                return text(StatusCode::BAD_REQUEST, why);
            }
        };
        let response = match route {
            Route::ValidateWork => self.admit(&request).await,
            Route::ValidateCluster => {
                self.admit_cluster(&request, clusters::judge_cluster(&request))
                    .await
            }
            Route::ValidateBinding => {
                self.admit_cluster(&request, clusters::judge_binding(&request))
                    .await
            }
            Route::MutateCluster => default_cluster(&request),
        };
        match serde_json::to_vec(&response.into_review()) {
            Ok(json) => {
                let mut response = Response::new(Full::new(Bytes::from(json)));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
            Err(err) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("writing the AdmissionReview: {err}"),
            ),
        }
    }

    /// The answer to one request, with the `execute-as` review when it needs one.
    async fn admit(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let namespace = request.namespace.as_deref().unwrap_or("");
        let user = request.user_info.username.as_deref().unwrap_or("");
        let verdict = match review::judge(request, &self.limits) {
            Verdict::CheckExecuteAs(check) => {
                let api = ocm_api::kube::Api::<
                    ocm_api::k8s_openapi::api::authorization::v1::SubjectAccessReview,
                >::all(self.client.clone());
                match api
                    .create(&PostParams::default(), &check.review(&request.user_info))
                    .await
                {
                    Ok(reviewed) if reviewed.status.as_ref().is_some_and(|s| s.allowed) => {
                        Verdict::Allow
                    }
                    Ok(_) => Verdict::Deny(check.denied(&request.user_info)),
                    Err(err) => {
                        tracing::warn!(%err, uid = %request.uid, "execute-as review failed");
                        Verdict::Deny(review::internal(format!(
                            "checking whether user {user} may execute as {}: {err}",
                            check.executor.user_name()
                        )))
                    }
                }
            }
            decided => decided,
        };
        let response = AdmissionResponse::from(request);
        match verdict {
            Verdict::Deny(status) => {
                tracing::info!(
                    uid = %request.uid, operation = ?request.operation, %namespace,
                    name = %request.name, %user, code = status.code, reason = %status.message,
                    "ManifestWork refused"
                );
                let mut response = response.deny(&status.message);
                response.result = status;
                response
            }
            _ => {
                tracing::debug!(
                    uid = %request.uid, operation = ?request.operation, %namespace,
                    name = %request.name, %user, "ManifestWork admitted"
                );
                response
            }
        }
    }
}

impl Handler {
    /// The answer to a ManagedCluster or ManagedClusterSetBinding request: every permission the
    /// verdict needs is asked of the apiserver for the requester; the first it lacks refuses.
    async fn admit_cluster(
        &self,
        request: &AdmissionRequest<DynamicObject>,
        verdict: ClusterVerdict,
    ) -> AdmissionResponse {
        let user = request.user_info.username.as_deref().unwrap_or("");
        let refusal = match verdict {
            ClusterVerdict::Allow => None,
            ClusterVerdict::Deny(status) => Some(*status),
            ClusterVerdict::Check(needed) => {
                let api = ocm_api::kube::Api::<
                    ocm_api::k8s_openapi::api::authorization::v1::SubjectAccessReview,
                >::all(self.client.clone());
                let mut refusal = None;
                for need in needed {
                    match api
                        .create(&PostParams::default(), &need.review(&request.user_info))
                        .await
                    {
                        Ok(reviewed) if reviewed.status.as_ref().is_some_and(|s| s.allowed) => {}
                        Ok(_) => {
                            refusal = Some(need.denied(&request.user_info));
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(%err, uid = %request.uid, "admission review failed");
                            refusal = Some(review::internal(format!(
                                "checking whether user {user} may {} {}/{}: {err}",
                                need.verb, need.resource, need.subresource
                            )));
                            break;
                        }
                    }
                }
                refusal
            }
        };
        let response = AdmissionResponse::from(request);
        match refusal {
            Some(status) => {
                tracing::info!(
                    uid = %request.uid, operation = ?request.operation, kind = %request.kind.kind,
                    name = %request.name, %user, code = status.code, reason = %status.message,
                    "refused"
                );
                let mut response = response.deny(&status.message);
                response.result = status;
                response
            }
            None => response,
        }
    }
}

/// OCM's defaults for a ManagedCluster, as a JSON patch.
fn default_cluster(request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let patch = clusters::defaults(request, ocm_api::k8s_openapi::jiff::Timestamp::now()).and_then(
        |patch| {
            patch
                .map(serde_json::from_value::<json_patch::Patch>)
                .transpose()
                .map_err(|e| Box::new(review::internal(format!("building the patch: {e}"))))
        },
    );
    match patch {
        Ok(None) => response,
        Ok(Some(patch)) => match response.clone().with_patch(patch) {
            Ok(patched) => patched,
            Err(err) => {
                let mut denied = response.deny(err.to_string());
                denied.result = review::internal(err.to_string());
                denied
            }
        },
        Err(status) => {
            let mut denied = response.deny(&status.message);
            denied.result = *status;
            denied
        }
    }
}

/// The AdmissionReview v1 request in `body`, or why there is none.
fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not an AdmissionReview: {e}"))?;
    if review.types.api_version != META_API_VERSION_V1 || review.types.kind != META_KIND {
        return Err(format!(
            "expected kind {META_KIND} of {META_API_VERSION_V1}, got kind {:?} of {:?}",
            review.types.kind, review.types.api_version
        ));
    }
    review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_owned())
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body + "\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_reviews_are_named() {
        let err = |body: &str| parse(body.as_bytes()).err().unwrap_or_default();
        assert!(err("not json").starts_with("the body is not an AdmissionReview: "));
        assert!(
            err(r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#)
                .contains("expected kind AdmissionReview of admission.k8s.io/v1")
        );
        assert_eq!(
            err(r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            "the AdmissionReview has no request"
        );
    }
}
