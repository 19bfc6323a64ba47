//! The console runs under one Content-Security-Policy locally and in AWS: the local server's
//! (which the browser test runs the console under) is the template's, less the user pool's
//! hosted UI that only exists in AWS. So a policy change that breaks the console breaks the
//! browser test, not only a deployed stage.

use inventory_local::server::CONTENT_SECURITY_POLICY;

const TEMPLATE: &str = include_str!("../../infra/template.yaml");

/// The directives of a policy, each with its sources in order.
fn directives(policy: &str) -> Vec<Vec<String>> {
    policy
        .split(';')
        .map(|d| d.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|d| !d.is_empty())
        .collect()
}

/// The template's policy (`ConsoleSecurityHeaders`), without its `${...}` host sources.
fn template_policy_without_hosted_ui() -> Vec<Vec<String>> {
    let line = TEMPLATE
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("ContentSecurityPolicy: !Sub "))
        .expect("infra/template.yaml's ConsoleSecurityHeaders has a ContentSecurityPolicy: !Sub \"...\"");
    let policy = line.trim_matches('"');
    directives(policy)
        .into_iter()
        .map(|d| d.into_iter().filter(|s| !s.contains("${")).collect())
        .collect()
}

#[test]
fn the_local_server_sends_the_templates_policy() {
    assert_eq!(
        directives(CONTENT_SECURITY_POLICY),
        template_policy_without_hosted_ui(),
        "local/src/server.rs CONTENT_SECURITY_POLICY and infra/template.yaml's \
         ConsoleSecurityHeaders differ (other than the hosted UI's address): change both"
    );
}

#[test]
fn the_policy_allows_no_inline_or_foreign_script() {
    let policy = directives(CONTENT_SECURITY_POLICY);
    let script = policy
        .iter()
        .find(|d| d[0] == "script-src")
        .expect("a script-src directive");
    assert_eq!(script[1..], ["'self'", "'wasm-unsafe-eval'"]);
    for needed in [
        ["default-src", "'self'"],
        ["frame-ancestors", "'none'"],
        ["object-src", "'none'"],
    ] {
        assert!(
            policy.iter().any(|d| d[..] == needed[..]),
            "the policy lacks {needed:?}"
        );
    }
}
