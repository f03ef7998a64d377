//! The fake API server in process: a `kube::Client` whose requests go straight to the
//! server's handler, with no socket and no kubeconfig, authenticated as the fake's user.
//! Everything but port-forward (which needs a connection to upgrade) answers exactly as
//! over HTTP, and requests are recorded the same way.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Request, Response};

use super::server::{handle, Body, Shared};
use super::FakeCluster;

/// The tower `Service` behind [`FakeCluster::client`].
#[derive(Clone)]
pub struct InProcess(pub Arc<Shared>);

impl tower_service::Service<Request<kube::client::Body>> for InProcess {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<kube::client::Body>) -> Self::Future {
        let bearer = format!("Bearer {}", FakeCluster::TOKEN);
        if let Ok(value) = HeaderValue::from_str(&bearer) {
            req.headers_mut().insert(AUTHORIZATION, value);
        }
        Box::pin(handle(self.0.clone(), req))
    }
}
