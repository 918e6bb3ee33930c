//! `Tasks/GetLogs` over HTTP: the gRPC stream collected into one `text/plain` answer. Never
//! follows; bounded in size and time so a chatty container cannot hold the request open.

use super::status_response;
use crate::transport::grpc::TasksApi;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_proto::v1::tasks_server::Tasks;
use berth_proto::v1::GetLogsRequest;
use std::time::Duration;
use tokio_stream::StreamExt;

const MAX_BYTES: usize = 1 << 20;
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Lines when the request asks for none.
const DEFAULT_TAIL: i32 = 500;

pub async fn collect(api: &TasksApi, mut req: tonic::Request<GetLogsRequest>) -> Response {
    let r = req.get_mut();
    r.follow = false;
    if r.tail <= 0 {
        r.tail = DEFAULT_TAIL;
    }
    let mut stream = match api.get_logs(req).await {
        Ok(s) => s.into_inner(),
        Err(s) => return status_response(&s),
    };
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    while out.len() < MAX_BYTES {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => out.extend_from_slice(&chunk.data),
            Ok(Some(Err(s))) => return status_response(&s),
            Ok(None) | Err(_) => break,
        }
    }
    out.truncate(MAX_BYTES);
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        String::from_utf8_lossy(&out).into_owned(),
    )
        .into_response()
}
