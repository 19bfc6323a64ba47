use inventory_store::StoreError;
use thiserror::Error;

/// Failures of the processor. Per record, a failure is either permanent (the record is
/// recorded as a rejection and never retried) or transient (the batch reports it as a
/// `batchItemFailure` and the Pipe retries from it); these variants are the transient kind
/// and the configuration mistakes that stop a cold start.
#[derive(Debug, Error)]
pub enum ProcessorError {
    #[error("{0}. The Pipe will retry the batch from the first record affected")]
    Store(#[from] StoreError),

    #[error(transparent)]
    Stream(#[from] inventory_stream::StreamError),

    #[error("the invocation is not an EventBridge Pipes batch from a Kinesis source (a JSON array of flat Kinesis records): {0}. Check the Pipe's source is the Kinesis stream and its target has no input transformer")]
    NotABatch(String),

    #[error(transparent)]
    Setting(#[from] InvalidSetting),

    #[error("environment variable {name} is not set: set it to the name of the {what} table (infra/template.yaml sets it)")]
    Unset {
        name: &'static str,
        what: &'static str,
    },

    #[error("the processor's environment could not be read: {0}. Set the variables as infra/template.yaml does")]
    Environment(String),

    #[error("product {product_id}: gave up after {attempts} conflicting concurrent writes; is a second processor or a replay writing to the same table?")]
    Contention { product_id: String, attempts: usize },
}

/// An environment variable whose value breaks its rule (processor/src/config.rs).
#[derive(Debug, Clone, Error)]
#[error("{name}={value} is not valid: it must be {rule}")]
pub struct InvalidSetting {
    pub name: String,
    pub value: String,
    pub rule: &'static str,
}

impl InvalidSetting {
    pub fn new(name: &str, value: &str, rule: &'static str) -> Self {
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
            rule,
        }
    }
}

impl ProcessorError {
    pub fn dynamo<E>(operation: &'static str, err: E) -> Self
    where
        E: std::error::Error,
    {
        Self::Store(StoreError::dynamo(operation, err))
    }
}
