//! The state every component reads: the API client and its latest answers, refreshed together.

use std::time::Duration;

use inventory_domain::api::{DeadLetterPage, InventoryPage, RejectionPage, SimulationList};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{Api, CognitoConfig};
use inventory_domain::api::Stats;

/// How often the console polls the API.
pub(crate) const POLL: Duration = Duration::from_millis(1500);

/// Everything the console shows, refreshed together.
#[derive(Clone, Copy)]
pub(crate) struct Live {
    pub(crate) api: RwSignal<Option<Api>>,
    /// `None` while the first answer is awaited.
    pub(crate) reachable: RwSignal<Option<Result<(), String>>>,
    pub(crate) inventory: RwSignal<Option<InventoryPage>>,
    pub(crate) stats: RwSignal<Option<Stats>>,
    pub(crate) rejections: RwSignal<Option<RejectionPage>>,
    pub(crate) simulations: RwSignal<Option<SimulationList>>,
    pub(crate) dead_letters: RwSignal<Option<DeadLetterPage>>,
    pub(crate) status_filter: RwSignal<String>,
    /// The user pool's hosted UI (AWS); `None` locally, where the API token field is shown.
    pub(crate) cognito: RwSignal<Option<CognitoConfig>>,
    /// A sign-in that failed, to show.
    pub(crate) sign_in_error: RwSignal<Option<String>>,
}

impl Live {
    pub(crate) fn refresh(self, busy: StoredValue<bool>) {
        let Some(api) = self.api.get_untracked() else {
            return;
        };
        if busy.get_value() {
            return;
        }
        busy.set_value(true);
        let status = self.status_filter.get_untracked();
        spawn_local(async move {
            let (inventory, stats, rejections, simulations, dead_letters) = futures::join!(
                api.inventory(&status),
                api.stats(),
                api.rejections(),
                api.simulations(),
                api.dead_letters(),
            );
            let mut error = None;
            // Keep the last good data on a failed poll, so nothing flickers away.
            match inventory {
                Ok(v) => self.inventory.set(Some(v)),
                Err(e) => error = Some(e),
            }
            match stats {
                Ok(v) => self.stats.set(Some(v)),
                Err(e) => error = Some(e),
            }
            match rejections {
                Ok(v) => self.rejections.set(Some(v)),
                Err(e) => error = Some(e),
            }
            match simulations {
                Ok(v) => self.simulations.set(Some(v)),
                Err(e) => error = Some(e),
            }
            match dead_letters {
                Ok(v) => self.dead_letters.set(Some(v)),
                Err(e) => error = Some(e),
            }
            self.reachable
                .set(Some(error.map_or(Ok(()), |e| Err(e.message()))));
            busy.set_value(false);
        });
    }
}
