//! The state every component reads: the API client, its latest answers, and the inventory
//! page asked for. Polling costs what changed, not what exists:
//!
//! - the current inventory page (one page, never the catalog) every second, with the
//!   `ETag` of the copy held: an unchanged page is a `304` without a body, and nothing
//!   re-renders;
//! - `/api/stats` every 5 s;
//! - simulations, dead letters and rejections every 15 s.
//!
//! A signal is only set when its value changed, so nothing re-renders (and no alert is
//! redrawn) on a poll that brought nothing new.
//!
//! Where reads need sign-in (a user pool is configured), a read answered 401 is not an
//! error to retry: that resource is not polled again (signing in reloads the page), and
//! when it is the inventory, `sign_in_needed` shows the sign-in gate instead of the
//! dashboard.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use inventory_domain::api::{DeadLetterPage, InventoryPage, SimulationList, Stats};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{Api, ApiError, CognitoConfig, Conditional, InventoryQuery, RejectionList};

/// How often the current inventory page is asked for.
pub(crate) const POLL: Duration = Duration::from_secs(1);
/// Every how many polls `/api/stats` is read.
const STATS_EVERY: u64 = 5;
/// Every how many polls simulations, dead letters and rejections are read.
const SLOW_EVERY: u64 = 15;

/// Where the low-stock threshold is remembered.
const THRESHOLD_KEY: &str = "inventory-console-low-stock";
const DEFAULT_THRESHOLD: u64 = 10;
/// Where the local stack's API token is kept (typed in the simulation form).
pub(crate) const TOKEN_KEY: &str = "inventory-console-token";

pub(crate) fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

/// The local stack's token, as last typed in (none when empty).
pub(crate) fn typed_token() -> Option<String> {
    storage()
        .and_then(|s| s.get_item(TOKEN_KEY).ok().flatten())
        .filter(|t| !t.is_empty())
}

/// What the polls are doing, outside the reactive graph.
#[derive(Default)]
struct Polls {
    ticks: u64,
    /// The inventory path the copy held answers, and its `ETag`.
    etag: Option<(String, String)>,
    /// The inventory path being fetched.
    inventory_in_flight: Option<String>,
    in_flight: BTreeSet<&'static str>,
    /// The last error of each resource whose last poll failed.
    errors: BTreeMap<&'static str, String>,
    /// The resources the API refused to read without sign-in: not polled again.
    refused: BTreeSet<&'static str>,
}

/// Everything the console shows.
#[derive(Clone, Copy)]
pub(crate) struct Live {
    pub(crate) api: RwSignal<Option<Api>>,
    /// `None` while the first answer is awaited; else the first failing poll's error.
    pub(crate) reachable: RwSignal<Option<Result<(), String>>>,
    pub(crate) inventory: RwSignal<Option<InventoryPage>>,
    /// The inventory page asked for.
    pub(crate) query: RwSignal<InventoryQuery>,
    /// The cursors of the pages before the current one (Previous pops one).
    pub(crate) previous: RwSignal<Vec<Option<String>>>,
    /// Stock at or under this is low: highlighted, and the "only low stock" filter.
    pub(crate) threshold: RwSignal<u64>,
    pub(crate) stats: RwSignal<Option<Stats>>,
    pub(crate) rejections: RwSignal<Option<RejectionList>>,
    pub(crate) simulations: RwSignal<Option<SimulationList>>,
    pub(crate) dead_letters: RwSignal<Option<DeadLetterPage>>,
    /// The user pool's hosted UI (AWS); `None` locally, where the API token field is shown.
    pub(crate) cognito: RwSignal<Option<CognitoConfig>>,
    /// A sign-in that failed, to show.
    pub(crate) sign_in_error: RwSignal<Option<String>>,
    /// The inventory read answered 401 where a sign-in is possible: the sign-in gate shows.
    pub(crate) sign_in_needed: RwSignal<bool>,
    polls: StoredValue<Polls>,
}

impl Live {
    pub(crate) fn new() -> Self {
        let threshold = storage()
            .and_then(|s| s.get_item(THRESHOLD_KEY).ok().flatten())
            .and_then(|t| t.parse().ok())
            .unwrap_or(DEFAULT_THRESHOLD);
        Self {
            api: RwSignal::new(None),
            reachable: RwSignal::new(None),
            inventory: RwSignal::new(None),
            query: RwSignal::new(InventoryQuery::default()),
            previous: RwSignal::new(Vec::new()),
            threshold: RwSignal::new(threshold),
            stats: RwSignal::new(None),
            rejections: RwSignal::new(None),
            simulations: RwSignal::new(None),
            dead_letters: RwSignal::new(None),
            cognito: RwSignal::new(None),
            sign_in_error: RwSignal::new(None),
            sign_in_needed: RwSignal::new(false),
            polls: StoredValue::new(Polls::default()),
        }
    }

    /// Polls on a timer: the inventory page each tick, the rest less often.
    pub(crate) fn start_polling(self) {
        set_interval(
            move || {
                let ticks = self.polls.with_value(|p| p.ticks) + 1;
                self.polls.update_value(|p| p.ticks = ticks);
                self.poll_inventory();
                if ticks.is_multiple_of(STATS_EVERY) {
                    self.poll_stats();
                }
                if ticks.is_multiple_of(SLOW_EVERY) {
                    self.poll_slow();
                }
            },
            POLL,
        );
    }

    /// Reads everything now (at start, and after the user started or redrove something).
    pub(crate) fn refresh(self) {
        self.poll_inventory();
        self.poll_stats();
        self.poll_slow();
    }

    /// Changes the question (sort, filter, search): back to its first page.
    pub(crate) fn change_query(self, change: impl FnOnce(&mut InventoryQuery)) {
        let mut q = self.query.get_untracked();
        change(&mut q);
        q.cursor = None;
        if q != self.query.get_untracked() {
            self.previous.set(Vec::new());
            self.query.set(q);
        }
    }

    pub(crate) fn next_page(self) {
        let Some(next) = self
            .inventory
            .with_untracked(|p| p.as_ref().and_then(|p| p.next_cursor.clone()))
        else {
            return;
        };
        let current = self.query.with_untracked(|q| q.cursor.clone());
        self.previous.update(|p| p.push(current));
        self.query.update(|q| q.cursor = Some(next));
    }

    pub(crate) fn previous_page(self) {
        let mut stack = self.previous.get_untracked();
        if let Some(cursor) = stack.pop() {
            self.previous.set(stack);
            self.query.update(|q| q.cursor = cursor);
        }
    }

    pub(crate) fn set_threshold(self, threshold: u64) {
        if threshold == self.threshold.get_untracked() {
            return;
        }
        self.threshold.set(threshold);
        if let Some(s) = storage() {
            let _ = s.set_item(THRESHOLD_KEY, &threshold.to_string());
        }
        if self.query.with_untracked(|q| q.low_stock.is_some()) {
            self.change_query(|q| q.low_stock = Some(threshold));
        }
    }

    /// Asks for the current inventory page, with the `ETag` of the copy held of it.
    pub(crate) fn poll_inventory(self) {
        let Some(api) = self.api.get_untracked() else {
            return;
        };
        if self.sign_in_needed.get_untracked() {
            return;
        }
        let query = self.query.get_untracked();
        let path = query.path();
        let mut etag = None;
        let started = self.polls.try_update_value(|p| {
            if p.inventory_in_flight.as_deref() == Some(path.as_str()) {
                return false;
            }
            p.inventory_in_flight = Some(path.clone());
            etag = p
                .etag
                .as_ref()
                .filter(|(held, _)| *held == path)
                .map(|(_, e)| e.clone());
            true
        });
        if started != Some(true) {
            return;
        }
        spawn_local(async move {
            let result = api.inventory(&query, etag.as_deref()).await;
            let current = self.query.with_untracked(|q| q.path()) == path;
            self.polls.update_value(|p| {
                if p.inventory_in_flight.as_deref() == Some(path.as_str()) {
                    p.inventory_in_flight = None;
                }
            });
            // The user asked for another page meanwhile: this answer is not shown.
            if !current {
                return;
            }
            match result {
                Ok(Conditional::Unchanged) => self.succeeded("inventory"),
                Ok(Conditional::Changed { body, etag }) => {
                    self.polls
                        .update_value(|p| p.etag = etag.map(|e| (path.clone(), e)));
                    set_if_changed(self.inventory, body);
                    self.succeeded("inventory");
                }
                Err(e) => self.failed("inventory", e),
            }
        });
    }

    fn poll_stats(self) {
        if let Some(api) = self.api.get_untracked() {
            self.fetch("stats", self.stats, async move { api.stats().await });
        }
    }

    fn poll_slow(self) {
        let Some(api) = self.api.get_untracked() else {
            return;
        };
        let a = api.clone();
        self.fetch("simulations", self.simulations, async move {
            a.simulations().await
        });
        let a = api.clone();
        self.fetch("dead letters", self.dead_letters, async move {
            a.dead_letters().await
        });
        // Locally the token typed in the simulation form signs the caller in, so its
        // rejections come with their payloads; a token the API refuses reads as anonymous.
        let token = if self.cognito.get_untracked().is_none() {
            typed_token()
        } else {
            None
        };
        self.fetch("rejections", self.rejections, async move {
            match api.rejections(token.as_deref()).await {
                Err(ApiError::Unauthorized(_)) if token.is_some() => api.rejections(None).await,
                other => other,
            }
        });
    }

    /// Runs one poll of `name` unless one is under way, and keeps its answer in `target`.
    fn fetch<T, F>(self, name: &'static str, target: RwSignal<Option<T>>, request: F)
    where
        T: PartialEq + Send + Sync + 'static,
        F: Future<Output = Result<T, ApiError>> + 'static,
    {
        let started = self
            .polls
            .try_update_value(|p| !p.refused.contains(name) && p.in_flight.insert(name));
        if started != Some(true) {
            return;
        }
        spawn_local(async move {
            let result = request.await;
            self.polls.update_value(|p| {
                p.in_flight.remove(name);
            });
            // On a failed poll the last good answer stays, so nothing flickers away.
            match result {
                Ok(v) => {
                    set_if_changed(target, v);
                    self.succeeded(name);
                }
                Err(e) => self.failed(name, e),
            }
        });
    }

    fn succeeded(self, name: &'static str) {
        self.polls.update_value(|p| {
            p.errors.remove(name);
        });
        self.publish_reachability();
    }

    fn failed(self, name: &'static str, error: ApiError) {
        if matches!(error, ApiError::Unauthorized(_)) && self.cognito.get_untracked().is_some() {
            self.refused(name);
            return;
        }
        self.polls.update_value(|p| {
            p.errors.insert(name, error.message());
        });
        self.publish_reachability();
    }

    /// The API answered `name` 401 and a sign-in would open it: stop asking, and gate the
    /// page when it is the inventory. The API answered, so it is no connection error.
    fn refused(self, name: &'static str) {
        self.polls.update_value(|p| {
            p.errors.remove(name);
            p.refused.insert(name);
        });
        if name == "inventory" && !self.sign_in_needed.get_untracked() {
            self.sign_in_needed.set(true);
        }
        self.publish_reachability();
    }

    /// The connection badge's state: changed only when its text would.
    fn publish_reachability(self) {
        let now = self
            .polls
            .with_value(|p| p.errors.values().next().cloned())
            .map_or(Ok(()), Err);
        if self.reachable.with_untracked(|r| r.as_ref() != Some(&now)) {
            self.reachable.set(Some(now));
        }
    }
}

/// Sets `target` to `value` unless it holds it already (no re-render then).
fn set_if_changed<T: PartialEq + Send + Sync + 'static>(target: RwSignal<Option<T>>, value: T) {
    if target.with_untracked(|held| held.as_ref() != Some(&value)) {
        target.set(Some(value));
    }
}
