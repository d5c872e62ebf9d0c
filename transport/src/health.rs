//! `/healthz`, `/readyz` and `/metrics` over plain HTTP/1, served by both binaries (bind it to a
//! private address).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Whether the process serves: set once it is up (the hub: CRDs, PKI and broker). The agent
/// answers with its own [`Probe`].
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What `/readyz` or `/healthz` answers: 200 with `body` when `ok`, else 503 with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    pub ok: bool,
    pub body: String,
}

impl ProbeAnswer {
    pub fn ok(body: impl Into<String>) -> Self {
        Self {
            ok: true,
            body: body.into(),
        }
    }

    pub fn failed(body: impl Into<String>) -> Self {
        Self {
            ok: false,
            body: body.into(),
        }
    }
}

/// How a process answers its probes. [`Readiness`] is the simplest: ready once set, always
/// live.
pub trait Probe: Send + Sync {
    /// `/readyz`: whether the process does its job now.
    fn ready(&self) -> ProbeAnswer;
    /// `/healthz` and `/livez`: whether it is worth keeping (false: restart it).
    fn live(&self) -> ProbeAnswer {
        ProbeAnswer::ok("ok")
    }
}

impl Probe for Readiness {
    fn ready(&self) -> ProbeAnswer {
        if self.is_ready() {
            ProbeAnswer::ok("ok")
        } else {
            ProbeAnswer::failed("starting")
        }
    }
}

/// Serves until `cancel`.
pub async fn serve<P: Probe + ?Sized + 'static>(
    listener: tokio::net::TcpListener,
    readiness: Arc<P>,
    registry: Arc<Registry>,
    cancel: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "health listener accept failed");
                    continue;
                }
            },
        };
        let (readiness, registry) = (Arc::clone(&readiness), Arc::clone(&registry));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = respond(request.uri().path(), &*readiness, &registry);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond<P: Probe + ?Sized>(path: &str, probe: &P, registry: &Registry) -> Response<Full<Bytes>> {
    let answer = |answer: ProbeAnswer| {
        let status = if answer.ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, answer.body)
    };
    let (status, body) = match path {
        "/healthz" | "/livez" => answer(probe.live()),
        "/readyz" => answer(probe.ready()),
        "/metrics" => {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, registry) {
                Ok(()) => (StatusCode::OK, text),
                Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
            }
        }
        _ => (StatusCode::NOT_FOUND, "not found".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
