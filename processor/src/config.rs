//! The processor Lambda's configuration: its environment (infra/template.yaml sets it), read
//! by clap. Each variable is one field of [`Variables`], with its rule; a variable left
//! unset keeps [`ProcessorSettings::default`]'s value.

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _};
use inventory_domain::dedup;
use inventory_store::config::{EVENTS_TABLE_VAR, INVENTORY_TABLE_VAR};
use inventory_store::Tables;

use crate::error::{InvalidSetting, ProcessorError};
use crate::handler::ProcessorSettings;
use crate::metrics::STAGE_VAR;

/// The environment variable that sets [`ProcessorSettings::dedup_window`], in seconds.
pub const DEDUP_WINDOW_VAR: &str = "DEDUP_WINDOW_SECONDS";
/// The environment variable that turns [`ProcessorSettings::history`] on (`on`) or off
/// (`off`, the default).
pub const HISTORY_VAR: &str = "PRODUCT_HISTORY";
/// The environment variable that sets [`ProcessorSettings::product_cache_max_items`].
pub const PRODUCT_CACHE_VAR: &str = "PRODUCT_CACHE_MAX_ITEMS";
/// The largest [`PRODUCT_CACHE_VAR`] accepted: about 5 GB of products, more than the
/// largest Lambda can spare beside the runtime.
const PRODUCT_CACHE_LIMIT: usize = 10_000_000;

/// What the processor Lambda reads from its environment.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// From `INVENTORY_TABLE` and `EVENTS_TABLE`, both required.
    pub tables: Tables,
    /// Defaults, with [`DEDUP_WINDOW_VAR`], [`PRODUCT_CACHE_VAR`] and [`HISTORY_VAR`] when
    /// set.
    pub settings: ProcessorSettings,
    /// The stage the metrics are dimensioned by ([`STAGE_VAR`]), unless unset or blank.
    pub stage: Option<String>,
}

/// The variables, as clap reads them: each field's `env` names its variable.
#[derive(Debug, clap::Parser)]
#[command(
    name = "processor",
    about = "The processor Lambda, configured by its environment"
)]
struct Variables {
    /// The inventory table's name (one item per product).
    #[arg(long, env = INVENTORY_TABLE_VAR)]
    inventory_table: Option<String>,
    /// The events table's name (shard logs, rejections, statistics, history).
    #[arg(long, env = EVENTS_TABLE_VAR)]
    events_table: Option<String>,
    /// How long after its original a producer's duplicate is recognised, in seconds.
    #[arg(long, env = DEDUP_WINDOW_VAR, value_parser = dedup_window)]
    dedup_window_seconds: Option<Duration>,
    /// Product items kept in memory; 0 turns the cache off.
    #[arg(long, env = PRODUCT_CACHE_VAR, value_parser = product_cache_max_items)]
    product_cache_max_items: Option<usize>,
    /// `on` keeps each product's history.
    #[arg(long, env = HISTORY_VAR, value_parser = history)]
    product_history: Option<bool>,
    /// The deployment stage, the metrics' `Stage` dimension.
    #[arg(long, env = STAGE_VAR)]
    stage: Option<String>,
}

impl ProcessorConfig {
    /// Reads the process's environment.
    pub fn from_env() -> Result<Self, ProcessorError> {
        Self::from_vars(std::env::vars_os())
    }

    /// Reads `vars` as if they were the whole environment (the process's is not read), so
    /// tests stay hermetic.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self, ProcessorError>
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let vars: HashMap<OsString, OsString> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // clap would read each `env` from the process; the arguments carry `vars`' values
        // instead, so what clap parses is `vars` and nothing else.
        let command = Variables::command().mut_args(|arg| arg.env(None::<&'static str>));
        let mut args = vec!["processor".to_owned()];
        for arg in Variables::command().get_arguments() {
            let (Some(name), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let Some(value) = vars.get(name) else {
                continue;
            };
            let value = value.clone().into_string().map_err(|raw| {
                InvalidSetting::new(
                    &name.to_string_lossy(),
                    &raw.to_string_lossy(),
                    "UTF-8 text",
                )
            })?;
            // `--name=value`, so a value starting with `-` is still the value.
            args.push(format!("--{long}={value}"));
        }
        let variables = command
            .try_get_matches_from(args)
            .and_then(|matches| Variables::from_arg_matches(&matches))
            .map_err(environment_error)?;
        variables.into_config()
    }
}

impl Variables {
    fn into_config(self) -> Result<ProcessorConfig, ProcessorError> {
        let table = |value: Option<String>, name: &'static str, what: &'static str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or(ProcessorError::Unset { name, what })
        };
        let tables = Tables {
            inventory: table(self.inventory_table, INVENTORY_TABLE_VAR, "inventory")?,
            events: table(self.events_table, EVENTS_TABLE_VAR, "events")?,
        };
        let defaults = ProcessorSettings::default();
        let settings = ProcessorSettings {
            dedup_window: self.dedup_window_seconds.unwrap_or(defaults.dedup_window),
            product_cache_max_items: self
                .product_cache_max_items
                .unwrap_or(defaults.product_cache_max_items),
            history: self.product_history.unwrap_or(defaults.history),
            ..defaults
        };
        Ok(ProcessorConfig {
            tables,
            settings,
            stage: self.stage.filter(|s| !s.trim().is_empty()),
        })
    }
}

/// The variable's own rule when a value broke it; clap's description otherwise.
fn environment_error(err: clap::Error) -> ProcessorError {
    use std::error::Error as _;
    match err
        .source()
        .and_then(|s| s.downcast_ref::<InvalidSetting>())
    {
        Some(invalid) => ProcessorError::Setting(invalid.clone()),
        None => ProcessorError::Environment(
            err.to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned(),
        ),
    }
}

fn dedup_window(raw: &str) -> Result<Duration, InvalidSetting> {
    dedup::window_ms_from_seconds(raw)
        .map(|ms| Duration::from_millis(ms.unsigned_abs()))
        .ok_or_else(|| {
            InvalidSetting::new(
                DEDUP_WINDOW_VAR,
                raw,
                "a whole number of seconds from 1 to 31536000 (365 days), at most the stream's retention",
            )
        })
}

fn product_cache_max_items(raw: &str) -> Result<usize, InvalidSetting> {
    raw.trim()
        .parse()
        .ok()
        .filter(|n| *n <= PRODUCT_CACHE_LIMIT)
        .ok_or_else(|| {
            InvalidSetting::new(
                PRODUCT_CACHE_VAR,
                raw,
                "a whole number of products from 0 (no cache) to 10000000; about 0.5 KB of memory each",
            )
        })
}

/// `on` or `off`; blank is `off`, as when unset.
fn history(raw: &str) -> Result<bool, InvalidSetting> {
    match raw.trim() {
        "on" => Ok(true),
        "off" | "" => Ok(false),
        _ => Err(InvalidSetting::new(
            HISTORY_VAR,
            raw,
            "`on` (keep each product's history) or `off`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: [(&str, &str); 2] = [("INVENTORY_TABLE", "inv"), ("EVENTS_TABLE", "ev")];

    /// The configuration from the two tables and `more`.
    fn config(more: &[(&str, &str)]) -> Result<ProcessorConfig, ProcessorError> {
        ProcessorConfig::from_vars(TABLES.iter().chain(more).copied())
    }

    /// The error `more` gives; it must name `name` and say what to set it to.
    fn refused(more: &[(&str, &str)], name: &str) -> String {
        let err = match config(more) {
            Ok(config) => panic!("{more:?} was accepted: {config:?}"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains(name) && err.contains("must be"), "{err}");
        err
    }

    #[test]
    fn the_tables_alone_give_the_defaults() {
        let config = config(&[]).expect("a valid environment");
        assert_eq!(config.tables.inventory, "inv");
        assert_eq!(config.tables.events, "ev");
        assert_eq!(config.stage, None);
        let (got, defaults) = (config.settings, ProcessorSettings::default());
        assert_eq!(got.dedup_window, defaults.dedup_window);
        assert_eq!(
            got.product_cache_max_items,
            defaults.product_cache_max_items
        );
        assert_eq!(got.history, defaults.history);
        assert_eq!(got.write_concurrency, defaults.write_concurrency);
    }

    #[test]
    fn each_variable_sets_its_setting() {
        let config = config(&[
            ("DEDUP_WINDOW_SECONDS", " 600 "),
            ("PRODUCT_CACHE_MAX_ITEMS", "10000000"),
            ("PRODUCT_HISTORY", "on"),
            ("STAGE", "prod"),
            ("UNRELATED", "ignored"),
        ])
        .expect("a valid environment");
        assert_eq!(config.settings.dedup_window, Duration::from_secs(600));
        assert_eq!(config.settings.product_cache_max_items, 10_000_000);
        assert!(config.settings.history);
        assert_eq!(config.stage.as_deref(), Some("prod"));
    }

    #[test]
    fn blank_optional_variables_count_as_unset() {
        let config = config(&[("PRODUCT_HISTORY", " "), ("STAGE", "  ")]).expect("valid");
        assert!(!config.settings.history);
        assert_eq!(config.stage, None);
    }

    #[test]
    fn a_missing_or_blank_table_is_named() {
        let err = ProcessorConfig::from_vars([("EVENTS_TABLE", "ev")]).expect_err("no table");
        assert!(
            matches!(
                err,
                ProcessorError::Unset {
                    name: "INVENTORY_TABLE",
                    ..
                }
            ),
            "{err}"
        );
        let err = ProcessorConfig::from_vars([("INVENTORY_TABLE", "inv"), ("EVENTS_TABLE", " ")])
            .expect_err("a blank table");
        assert!(
            matches!(
                err,
                ProcessorError::Unset {
                    name: "EVENTS_TABLE",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("set it to"), "{err}");
    }

    #[test]
    fn an_invalid_value_is_refused_with_its_variable_and_rule() {
        for (name, value) in [
            ("DEDUP_WINDOW_SECONDS", "0"),
            ("DEDUP_WINDOW_SECONDS", "-5"),
            ("DEDUP_WINDOW_SECONDS", "15m"),
            ("DEDUP_WINDOW_SECONDS", ""),
            ("PRODUCT_CACHE_MAX_ITEMS", "10000001"),
            ("PRODUCT_CACHE_MAX_ITEMS", "lots"),
            ("PRODUCT_HISTORY", "yes"),
        ] {
            let err = refused(&[(name, value)], name);
            assert!(
                err.starts_with(&format!("{name}={value} is not valid")),
                "{err}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_text_is_refused_with_its_variable() {
        use std::os::unix::ffi::OsStringExt as _;
        let value = OsString::from_vec(vec![b'o', 0xff]);
        let vars = TABLES
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .chain([(OsString::from("PRODUCT_HISTORY"), value)]);
        let err = ProcessorConfig::from_vars(vars).expect_err("not UTF-8");
        assert!(
            err.to_string().starts_with("PRODUCT_HISTORY=") && err.to_string().contains("UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn every_variable_is_read_by_its_name() {
        let command = Variables::command();
        command.clone().debug_assert();
        let names: Vec<String> = command
            .get_arguments()
            .filter(|a| a.get_long().is_some())
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        for name in [
            "INVENTORY_TABLE",
            "EVENTS_TABLE",
            "DEDUP_WINDOW_SECONDS",
            "PRODUCT_CACHE_MAX_ITEMS",
            "PRODUCT_HISTORY",
            "STAGE",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
    }
}
