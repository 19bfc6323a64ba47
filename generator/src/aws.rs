//! The AWS SDK configuration for the command-line tools, loaded the SDK's standard way
//! (environment, profile, `AWS_ENDPOINT_URL`), but only after the arguments are parsed, and
//! refusing a missing region in one line instead of the SDK's instance-metadata warnings
//! (a laptop or CI machine has no instance metadata service to ask).

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, SdkConfig};

#[derive(Debug, thiserror::Error)]
#[error("no AWS region is set: export AWS_REGION (e.g. us-east-1), and for the local stack AWS_ENDPOINT_URL=http://127.0.0.1:4566 with any AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (`make dev` prints these exports)")]
pub struct MissingRegion;

/// Region from the environment or the profile; never from instance metadata.
pub async fn sdk_config() -> Result<SdkConfig, MissingRegion> {
    let region = RegionProviderChain::first_try(
        aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
    )
    .or_else(aws_config::profile::ProfileFileRegionProvider::builder().build())
    .region()
    .await
    .ok_or(MissingRegion)?;
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await)
}
