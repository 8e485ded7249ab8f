use std::collections::HashMap;

use component_model::AsyncAssign;

// The cloud secret stores: their rules, all reported in one compile.
#[derive(AsyncAssign, Default)]
struct App {
    #[component(fetch_from = "aws_ssm", key = "/app/port", prefix = "/app/")]
    key_and_prefix: HashMap<String, String>,
    #[component(fetch_from = "aws_secrets", key = "prod/db", versoin_stage = "AWSPREVIOUS")]
    misspelt_stage: String,
    #[component(fetch_from = "aws_secrets", key = "prod/db", prefix = "prod/")]
    secrets_prefix: HashMap<String, String>,
    #[component(fetch_from = "azure_keyvault", key = "db-password", project = "p")]
    azure_project: String,
    #[component(fetch_from = "gcp_secrets", key = "db", version_stage = "AWSCURRENT")]
    gcp_stage: String,
    #[component(stream_from = "gcp_secrets", key = "db")]
    gcp_stream: String,
}

fn main() {}
