//! `berth.v1.Secrets`: the CLI's route to the secret store (`berth secret …`), through the same
//! Secrets Manager operations as the wire API. Only RevealSecretValue returns a value; its name
//! does not start with Get, so the token check asks for a read-write token.

use crate::model::secrets::{manager, AwsError};
use crate::state::State;
use berth_proto::v1::secrets_server::Secrets;
use berth_proto::v1::*;
use serde_json::{json, Value};
use tonic::{Request, Response, Status};

pub struct SecretsApi {
    pub state: State,
}

fn status(e: AwsError) -> Status {
    match e.kind {
        "ResourceNotFoundException" => Status::not_found(e.message),
        "ResourceExistsException" => Status::already_exists(e.message),
        "InvalidParameterException" | "InvalidRequestException" => {
            Status::invalid_argument(e.message)
        }
        _ => Status::internal(e.message),
    }
}

async fn call(state: &State, op: &'static str, input: Value) -> Result<Value, Status> {
    let state = state.clone();
    crate::foreground::blocking(move || manager::call(&state, op, &input))
        .await
        .map_err(|e| Status::internal(format!("handler failed: {e}")))?
        .unwrap_or_else(|| Err(AwsError::new("InternalServiceError", "no such operation")))
        .map_err(status)
}

fn date(v: &Value) -> String {
    v.as_f64()
        .map(|s| crate::time::rfc3339((s * 1000.0) as i64))
        .unwrap_or_default()
}

fn summary(v: &Value) -> SecretSummary {
    let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
    SecretSummary {
        arn: text("ARN"),
        name: text("Name"),
        description: text("Description"),
        created_date: date(&v["CreatedDate"]),
        last_changed_date: date(&v["LastChangedDate"]),
        deleted_date: date(&v["DeletedDate"]),
        versions: v["VersionIdsToStages"]
            .as_object()
            .map_or(0, |m| m.len() as i32),
    }
}

async fn described(state: &State, id: &str) -> Result<Response<SecretReply>, Status> {
    let v = call(state, "DescribeSecret", json!({ "SecretId": id })).await?;
    Ok(Response::new(SecretReply {
        secret: Some(summary(&v)),
    }))
}

#[tonic::async_trait]
impl Secrets for SecretsApi {
    async fn create_secret(
        &self,
        req: Request<CreateSecretRequest>,
    ) -> Result<Response<SecretReply>, Status> {
        let r = req.into_inner();
        let mut input = json!({"Name": r.name, "SecretString": r.secret_string});
        if !r.description.is_empty() {
            input["Description"] = json!(r.description);
        }
        let v = call(&self.state, "CreateSecret", input).await?;
        described(&self.state, v["ARN"].as_str().unwrap_or(&r.name)).await
    }

    async fn describe_secret(
        &self,
        req: Request<SecretRequest>,
    ) -> Result<Response<SecretReply>, Status> {
        described(&self.state, &req.into_inner().secret_id).await
    }

    async fn list_secrets(
        &self,
        _req: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsReply>, Status> {
        let v = call(
            &self.state,
            "ListSecrets",
            json!({"IncludePlannedDeletion": true}),
        )
        .await?;
        let secrets = v["SecretList"]
            .as_array()
            .map(|l| l.iter().map(summary).collect())
            .unwrap_or_default();
        Ok(Response::new(ListSecretsReply { secrets }))
    }

    async fn delete_secret(
        &self,
        req: Request<DeleteSecretRequest>,
    ) -> Result<Response<SecretReply>, Status> {
        let r = req.into_inner();
        let before = described(&self.state, &r.secret_id).await?.into_inner();
        let mut input = json!({ "SecretId": r.secret_id });
        if r.force_delete_without_recovery {
            input["ForceDeleteWithoutRecovery"] = json!(true);
        } else if r.recovery_window_in_days > 0 {
            input["RecoveryWindowInDays"] = json!(r.recovery_window_in_days);
        }
        let v = call(&self.state, "DeleteSecret", input).await?;
        let mut secret = before.secret.unwrap_or_default();
        secret.deleted_date = date(&v["DeletionDate"]);
        Ok(Response::new(SecretReply {
            secret: Some(secret),
        }))
    }

    async fn reveal_secret_value(
        &self,
        req: Request<SecretRequest>,
    ) -> Result<Response<SecretValueReply>, Status> {
        let id = req.into_inner().secret_id;
        let v = call(&self.state, "GetSecretValue", json!({ "SecretId": id })).await?;
        let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
        Ok(Response::new(SecretValueReply {
            arn: text("ARN"),
            name: text("Name"),
            secret_string: text("SecretString"),
            version_id: text("VersionId"),
        }))
    }
}
