//! `UpdateShardCount` as Kinesis does it: uniform scaling by splits and merges, so every new
//! shard names its parents in `ListShards`. ferrokinesis' own `UpdateShardCount` closes the
//! open shards and creates new ones with no `ParentShardId`, which would leave the
//! processor, the Pipe and the dead-letter consumer without the lineage Kinesis gives; the
//! local endpoint answers the call with this instead (`emulators.rs`).

use std::time::Duration;

use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use backon::{ExponentialBuilder, Retryable};

/// Rescales `stream` to `target` open shards of equal hash-key ranges (as Kinesis'
/// `UNIFORM_SCALING`): each target boundary inside an open shard splits it there, then the
/// open shards inside each target range are merged, adjacent pairs at a time. Returns the
/// open shard count before.
pub async fn uniform_scaling(client: &Client, stream: &str, target: u32) -> Result<usize, String> {
    if target == 0 {
        return Err("TargetShardCount must be at least 1".into());
    }
    let before = open_shards(client, stream).await?.len();
    // Each range is 2^128 / target wide (the last takes the rest), as Kinesis and
    // ferrokinesis' CreateStream cut them; 2^128 / n = MAX / n, plus one when MAX % n = n - 1.
    let n = u128::from(target);
    let width = u128::MAX / n + u128::from(u128::MAX % n == n - 1);
    let boundaries: Vec<u128> = (1..n).map(|k| k * width).collect();
    for boundary in &boundaries {
        let open = open_shards(client, stream).await?;
        let Some((id, _)) = open
            .iter()
            .find(|(_, (start, end))| start < boundary && boundary <= end)
        else {
            continue;
        };
        client
            .split_shard()
            .stream_name(stream)
            .shard_to_split(id)
            .new_starting_hash_key(boundary.to_string())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "SplitShard: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(e)
                )
            })?;
        wait_active(client, stream).await?;
    }
    loop {
        let open = open_shards(client, stream).await?;
        let range_of = |hash: u128| boundaries.iter().filter(|b| **b <= hash).count();
        let pair = open
            .windows(2)
            .find(|w| range_of(w[0].1 .0) == range_of(w[1].1 .0) && w[0].1 .1 + 1 == w[1].1 .0);
        let Some(pair) = pair else {
            break;
        };
        client
            .merge_shards()
            .stream_name(stream)
            .shard_to_merge(&pair[0].0)
            .adjacent_shard_to_merge(&pair[1].0)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "MergeShards: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(e)
                )
            })?;
        wait_active(client, stream).await?;
    }
    Ok(before)
}

/// The open shards with their hash-key ranges, in hash-key order.
async fn open_shards(client: &Client, stream: &str) -> Result<Vec<(String, (u128, u128))>, String> {
    let listed = crate::kinesis::list_shards(client, stream)
        .await
        .map_err(|e| e.to_string())?;
    let mut open: Vec<(String, (u128, u128))> = listed
        .into_iter()
        .filter(|s| !s.closed)
        .map(|s| (s.id, s.hash_keys))
        .collect();
    open.sort_by_key(|(_, range)| range.0);
    Ok(open)
}

/// Waits (bounded, about 5 s) until the stream is ACTIVE again after a split or a merge.
async fn wait_active(client: &Client, stream: &str) -> Result<(), String> {
    let active = || async {
        let summary = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| Some(aws_sdk_kinesis::error::DisplayErrorContext(e).to_string()))?;
        summary
            .stream_description_summary()
            .filter(|d| d.stream_status() == &StreamStatus::Active)
            .map(|_| ())
            .ok_or(None)
    };
    active
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(5))
                .with_max_delay(Duration::from_millis(200))
                .with_max_times(40),
        )
        .sleep(tokio::time::sleep)
        .when(Option::is_none)
        .await
        .map_err(|e| e.unwrap_or_else(|| format!("stream {stream} did not become ACTIVE")))
}

/// The `UpdateShardCount` call the local endpoint answers itself: its JSON body in, Kinesis'
/// JSON answer (or error) out.
pub async fn answer(client: &Client, body: &[u8]) -> Response {
    let error = |status: StatusCode, kind: &str, message: String| {
        (
            status,
            [("content-type", "application/x-amz-json-1.1")],
            serde_json::json!({"__type": kind, "message": message}).to_string(),
        )
            .into_response()
    };
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "the body is not JSON".into(),
        );
    };
    let stream = request["StreamName"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            request["StreamARN"]
                .as_str()
                .and_then(inventory_domain::arn::StreamArn::name_in)
                .map(str::to_owned)
        });
    let (Some(stream), Some(target)) = (stream, request["TargetShardCount"].as_u64()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "StreamName (or StreamARN) and TargetShardCount are required".into(),
        );
    };
    let Ok(target) = u32::try_from(target) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "TargetShardCount is too large".into(),
        );
    };
    match uniform_scaling(client, &stream, target).await {
        Ok(before) => (
            StatusCode::OK,
            [("content-type", "application/x-amz-json-1.1")],
            serde_json::json!({
                "StreamName": stream,
                "CurrentShardCount": before,
                "TargetShardCount": target,
            })
            .to_string(),
        )
            .into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, "ResourceInUseException", message),
    }
}
