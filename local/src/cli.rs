//! The `inventory-local` command line: `up` runs the local system until Ctrl-C, `demo` runs
//! it, publishes a simulated series through it and verifies the result. A library module so
//! a test can check command lines in process (`Cli::try_parse_from`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use inventory_generator::cli::SimArgs;

use crate::pipe_settings::PipeSettings;
use crate::stack::StackOptions;

#[derive(Parser)]
#[command(
    version,
    about = "The inventory pipeline on this machine: embedded DynamoDB and Kinesis, a local EventBridge Pipe and the processor"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command line `args` (the program's name first); no arguments beyond the name
    /// (as `cargo leptos watch` runs it) means `up`.
    pub fn parse_or_up<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        if args.len() <= 1 {
            args.truncate(1);
            if args.is_empty() {
                args.push("inventory-local".into());
            }
            args.push("up".into());
        }
        Self::parse_from(args)
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct StackArgs {
    /// Port of the local AWS endpoint (DynamoDB and Kinesis); 0 picks a free one.
    #[arg(long, default_value_t = 4566)]
    pub port: u16,
    /// Keep DynamoDB and Kinesis state here across restarts (in memory when omitted).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Shards of the Kinesis stream.
    #[arg(long, default_value_t = 4)]
    pub shards: i32,
    #[command(flatten)]
    pub pipe: PipeSettings,
}

impl StackArgs {
    /// The local stack these arguments ask for (the rest as by default).
    pub fn stack_options(&self) -> StackOptions {
        StackOptions {
            port: self.port,
            data_dir: self.data_dir.clone(),
            shards: self.shards,
            pipe: self.pipe.clone(),
            ..StackOptions::default()
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the local stack, the API and the console, and keep them running until Ctrl-C.
    Up(UpArgs),
    /// Start the local stack, publish a simulated series through it, verify DynamoDB, and
    /// exit (non-zero on any mismatch).
    Demo(DemoArgs),
}

#[derive(clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Port of the API and console.
    #[arg(long, default_value_t = 3000)]
    pub http_port: u16,
    /// Bearer token the API requires to start simulations (random when omitted).
    #[arg(long, env = "API_TOKEN")]
    pub api_token: Option<String>,
    /// The built console to serve (index.html and its assets).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_dir: PathBuf,
    /// Extra origins allowed by CORS (the console served elsewhere, e.g. a dev server).
    #[arg(long)]
    pub allowed_origin: Vec<String>,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub sim: SimArgs,
    /// How long to wait for the pipeline to catch up before comparing.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// After a consistent verdict, keep the stack running and serve the console and API
    /// until Ctrl-C (only when run from a terminal; scripts get the exit code at once).
    #[arg(long)]
    pub serve: bool,
    /// Port of the console and API when serving.
    #[arg(long, default_value_t = 3000)]
    pub http_port: u16,
    /// The built console to serve.
    #[arg(long, default_value = "target/site")]
    pub site_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_means_up_with_its_defaults() {
        let Command::Up(up) = Cli::parse_or_up(["inventory-local"]).command else {
            panic!("no arguments should mean `up`");
        };
        assert_eq!(up.http_port, 3000);
        assert_eq!(up.stack.port, 4566);
        assert_eq!(up.stack.shards, 4);
    }

    #[test]
    fn the_makefile_demo_command_line_parses() {
        let words = "inventory-local demo --port 0 --events 20000 --products 200 --skew zipf:1.1 --rate 2000 --duplicates 0.05 --malformed 0.01 --invalid 0.01 --serve";
        let cli = Cli::try_parse_from(words.split(' ')).unwrap_or_else(|e| panic!("{e}"));
        let Command::Demo(demo) = cli.command else {
            panic!("`demo` should parse as the demo");
        };
        assert_eq!(demo.stack.port, 0);
        assert!(demo.serve);
        assert_eq!(demo.timeout, Duration::from_secs(120));
        assert_eq!(demo.stack.stack_options().shards, 4);
    }

    #[test]
    fn an_unknown_option_is_refused() {
        assert!(Cli::try_parse_from(["inventory-local", "up", "--no-such-option"]).is_err());
    }
}
