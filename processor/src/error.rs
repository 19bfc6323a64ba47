use thiserror::Error;

/// Failures of the processor. Per record, a failure is either permanent (the record is
/// recorded as a rejection and never retried) or transient (the batch reports it as a
/// `batchItemFailure` and the Pipe retries from it); these variants are the transient kind
/// and the configuration mistakes that stop a cold start.
#[derive(Debug, Error)]
pub enum ProcessorError {
    #[error("environment variable {name} is not set: set it to the name of the {what} table (see infra/template.yaml)")]
    MissingTable {
        name: &'static str,
        what: &'static str,
    },

    #[error("DynamoDB {operation} failed after the SDK's retries: {message}. The Pipe will retry the batch from the first record affected; check the table exists, the function's role allows {operation}, and the table's throughput")]
    Dynamo {
        operation: &'static str,
        message: String,
    },

    #[error("product {product_id}: the stored item has a missing or invalid `{field}`; fix or delete the item (it was not written by this processor)")]
    CorruptItem { product_id: String, field: String },

    #[error("the invocation is not an EventBridge Pipes batch from a Kinesis source (a JSON array of flat Kinesis records): {0}. Check the Pipe's source is the Kinesis stream and its target has no input transformer")]
    NotABatch(String),

    #[error("{name}={value} is not valid: it must be {rule}")]
    Setting {
        name: &'static str,
        value: String,
        rule: &'static str,
    },

    #[error("product {product_id}: gave up after {attempts} conflicting concurrent writes; is a second processor or a replay writing to the same table?")]
    Contention { product_id: String, attempts: usize },
}

impl ProcessorError {
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
