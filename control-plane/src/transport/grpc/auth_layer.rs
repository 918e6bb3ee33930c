//! The tower layer that runs `Authorizer::check` on every gRPC request, with the identity of the
//! peer certificate rustls verified (if any), and puts the resulting `Access` (and the
//! `PeerIdentity`) in the request's extensions for the handlers.

use crate::model::auth::Authorizer;
use berth_trust::PeerIdentity;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authorizer>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authorizer>) -> Self {
        Self { auth }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authorizer>,
}

fn peer_identity(ext: &http::Extensions) -> Option<PeerIdentity> {
    let certs = ext.get::<TlsConnectInfo<TcpConnectInfo>>()?.peer_certs()?;
    PeerIdentity::from_der(certs.first()?)
}

impl<S, B> tower_service::Service<http::Request<B>> for AuthService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let peer = peer_identity(req.extensions());
        let authorization = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self
            .auth
            .check(authorization, peer.clone(), req.uri().path())
        {
            Ok(access) => {
                req.extensions_mut().insert(access);
                if let Some(p) = peer {
                    req.extensions_mut().insert(p);
                }
                // The clone that was made ready serves this call.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(inner.call(req))
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}
