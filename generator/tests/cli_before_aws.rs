//! The CLI answers `--help` and refuses bad arguments or a missing region itself, before
//! (or instead of) loading the AWS configuration, so a new user sees one clear line rather
//! than the SDK's instance-metadata warnings.

use std::process::Command;

fn generator(args: &[&str]) -> (bool, String, String) {
    let home = std::env::temp_dir().join("generator-cli-test-home");
    let _ = std::fs::create_dir_all(&home);
    let out = Command::new(env!("CARGO_BIN_EXE_generator"))
        .args(args)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .env("HOME", &home)
        .output()
        .expect("the generator binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_needs_no_aws_configuration() {
    let (ok, stdout, stderr) = generator(&["publish", "--help"]);
    assert!(ok);
    assert!(stdout.contains("--producers"), "{stdout}");
    assert_eq!(stderr, "", "nothing but the help");
}

#[test]
fn a_bad_argument_is_refused_before_any_aws_call() {
    let (ok, _, stderr) = generator(&["publish", "--producers", "0"]);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--producers"), "{stderr}");
}

#[test]
fn a_missing_region_is_one_clear_line() {
    let out = std::env::temp_dir().join("generator-cli-test-expected.json");
    let (ok, _, stderr) = generator(&[
        "publish",
        "--events",
        "1",
        "--expected-out",
        out.to_str().unwrap_or("expected.json"),
    ]);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("AWS_REGION"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("imds"), "{stderr}");
}
