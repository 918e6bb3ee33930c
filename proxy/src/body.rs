//! Bodies crossing the proxy. `UpBody` goes to a target: empty, a small buffered body that a retry
//! can send again, or the client's stream. `DownBody` goes back to the client and keeps its client
//! connection busy and its target's request in flight until the client has all of it.

use crate::conn::ConnGuard;
use crate::target::TargetGuard;
use crate::upstream::ResponseBody;
use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A request body on its way to a target.
pub(crate) enum UpBody {
    Empty,
    /// Buffered; `None` once sent.
    Full(Option<Bytes>),
    Stream(Incoming),
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpBody::Empty => Poll::Ready(None),
            UpBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            UpBody::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Empty => true,
            UpBody::Full(data) => data.is_none(),
            UpBody::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Empty => SizeHint::with_exact(0),
            UpBody::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            UpBody::Stream(body) => body.size_hint(),
        }
    }
}

/// A target's response body, from whichever client fetched it.
pub(crate) enum Reply {
    /// Berth's own HTTP/1.1 client (`upstream`).
    Direct(ResponseBody),
    /// hyper's client: streamed request bodies and upgrades.
    Hyper(Incoming),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body on its way to the client.
pub(crate) struct DownBody {
    inner: Down,
    _conn: ConnGuard,
    _target: Option<TargetGuard>,
}

enum Down {
    Upstream(Reply),
    /// The proxy's own answer (404, 502, 503, 504).
    Local(Full<Bytes>),
}

impl DownBody {
    pub fn upstream(body: Reply, conn: ConnGuard, target: Option<TargetGuard>) -> Self {
        Self {
            inner: Down::Upstream(body),
            _conn: conn,
            _target: target,
        }
    }

    pub fn local(body: Full<Bytes>, conn: ConnGuard) -> Self {
        Self {
            inner: Down::Local(body),
            _conn: conn,
            _target: None,
        }
    }
}

impl Body for DownBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().inner {
            Down::Upstream(Reply::Direct(body)) => {
                Pin::new(body).poll_frame(cx).map_err(BoxError::from)
            }
            Down::Upstream(Reply::Hyper(body)) => {
                Pin::new(body).poll_frame(cx).map_err(BoxError::from)
            }
            Down::Local(body) => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Down::Upstream(Reply::Direct(body)) => body.is_end_stream(),
            Down::Upstream(Reply::Hyper(body)) => body.is_end_stream(),
            Down::Local(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Down::Upstream(Reply::Direct(body)) => body.size_hint(),
            Down::Upstream(Reply::Hyper(body)) => body.size_hint(),
            Down::Local(body) => body.size_hint(),
        }
    }
}
