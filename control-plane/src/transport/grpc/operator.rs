//! `berth.v1.Operator`: a backup of the store, streamed (admin only, by `auth::need`).

use berth_proto::v1::operator_server::Operator;
use berth_proto::v1::{SaveSnapshotRequest, SnapshotChunk};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// What a chunk of the snapshot stream carries at most (gRPC's default message limit is 4 MiB).
const CHUNK: usize = 1 << 20;

pub struct OperatorApi {
    pub state: crate::state::State,
}

pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Operator for OperatorApi {
    type SaveSnapshotStream = SnapshotStream;

    async fn save_snapshot(
        &self,
        _: Request<SaveSnapshotRequest>,
    ) -> Result<Response<Self::SaveSnapshotStream>, Status> {
        let store = self.state.store().clone();
        let bytes = tokio::task::spawn_blocking(move || crate::store::backup::save(&*store))
            .await
            .map_err(|e| Status::internal(format!("snapshot failed: {e}")))?
            .map_err(|e| Status::unavailable(format!("snapshot not taken: {e}")))?;
        let chunks: Vec<Result<SnapshotChunk, Status>> = bytes
            .chunks(CHUNK)
            .map(|c| Ok(SnapshotChunk { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}
