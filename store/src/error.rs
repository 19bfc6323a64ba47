use thiserror::Error;

/// Failures reading or writing the pipeline's tables. `Clone`, so one failed request can be
/// reported against every key or item it carried.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    #[error("environment variable {name} is not set: set it to the name of the {what} table (see infra/template.yaml)")]
    MissingTable {
        name: &'static str,
        what: &'static str,
    },

    #[error("DynamoDB {operation} failed after the SDK's retries: {message}. Check the table exists, the caller's role allows {operation}, and the table's throughput")]
    Dynamo {
        operation: &'static str,
        message: String,
    },

    #[error("{key}: the stored item has a missing or invalid `{field}`; fix or delete the item (it was not written by this pipeline)")]
    CorruptItem { key: String, field: String },

    #[error("{what}: gave up after {attempts} conflicting concurrent writes; is a second processor or a replay writing to the same table?")]
    Contention { what: String, attempts: usize },

    #[error("DynamoDB {operation} left {count} of its keys or items unprocessed after {attempts} attempts (throttling): raise the table's capacity or retry later")]
    Unprocessed {
        operation: &'static str,
        count: usize,
        attempts: usize,
    },

    #[error("{what} could not be encoded as a DynamoDB item: {message}")]
    Encode { what: &'static str, message: String },

    #[error("the shard log of {shard} holds more than {max} events inside the dedup window, more than this function may keep in memory: lower DEDUP_WINDOW_SECONDS or raise the function's MemorySize (docs/consistency.md, \"Window limits\"). The batch is retried")]
    LogTooLarge { shard: String, max: usize },
}

impl StoreError {
    pub fn dynamo<E>(operation: &'static str, err: E) -> Self
    where
        E: std::error::Error,
    {
        // DisplayErrorContext shows the whole cause chain (throttling, 5xx, network).
        Self::Dynamo {
            operation,
            message: aws_sdk_dynamodb::error::DisplayErrorContext(err).to_string(),
        }
    }
}
