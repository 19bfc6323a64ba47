//! `/api/rejections`: rejected records newest first, a Query per UTC day of arrival (the
//! store's key scheme and its Query, [`inventory_store::rejections::newest_of_day`]), paged across days.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use chrono::{Days, NaiveDate, Utc};
use inventory_domain::api::{RejectionPage, RejectionView};
use inventory_store::rejections;
use inventory_store::Tables;
use serde::{Deserialize, Serialize};

use super::cursors;
use crate::error::ApiError;

/// Where the next page starts: a day's partition, and in it the sort key after which to go
/// on (empty: from that day's newest).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct RejectionCursor {
    day: String,
    sk: String,
}

const DAY_FORMAT: &str = "%Y-%m-%d";

/// How many days of rejections are kept (their TTL) and so looked through.
const DAYS_KEPT: u64 = rejections::TTL_DAYS as u64;

/// Rejections are filed under their record's day of arrival, and a past day changes only
/// when records of it are processed late (after an outage, or a Pipe replaced at
/// TRIM_HORIZON). A warm instance keeps the past days it read whole for
/// [`PAST_DAY_KEPT`]: a poll of the latest rejections reads today's partition, and the
/// 30 days before it once in that time, not one Query per day kept each poll (an idle
/// console's cost). A late rejection of a past day shows within that time.
#[derive(Default)]
pub struct RejectionsCache {
    whole_days: std::sync::Mutex<HashMap<NaiveDate, (std::time::Instant, Vec<RejectionView>)>>,
}

/// How long a past day read whole is answered from memory.
pub const PAST_DAY_KEPT: std::time::Duration = std::time::Duration::from_secs(300);
/// A day is past this long after it ended (a record arriving just before midnight is
/// usually processed within it).
const DAY_FINAL_AFTER_MINUTES: i64 = 10;

pub async fn rejections_page(
    db: &Client,
    tables: &Tables,
    cache: &RejectionsCache,
    limit: usize,
    cursor: Option<&str>,
) -> Result<RejectionPage, ApiError> {
    let now = Utc::now();
    let today = now.date_naive();
    let final_before = (now - chrono::Duration::minutes(DAY_FINAL_AFTER_MINUTES)).date_naive();
    let (mut day, mut start) = match cursor {
        None => (today, None),
        Some(c) => {
            let c: RejectionCursor = cursors::decode(c)?;
            let day =
                NaiveDate::parse_from_str(&c.day, DAY_FORMAT).map_err(|_| cursors::invalid())?;
            (day, Some(c.sk).filter(|sk| !sk.is_empty()))
        }
    };
    let oldest = today
        .checked_sub_days(Days::new(DAYS_KEPT))
        .unwrap_or(today);
    let mut out = Vec::new();
    let mut next = None;
    // Bounded: at most one Query per page-full or per day kept.
    while day >= oldest && out.len() < limit {
        if start.is_none() {
            let kept = cache
                .whole_days
                .lock()
                .ok()
                .and_then(|days| days.get(&day).cloned())
                .filter(|(read_at, _)| read_at.elapsed() < PAST_DAY_KEPT)
                .map(|(_, items)| items);
            if let Some(items) = kept.filter(|items| items.len() <= limit - out.len()) {
                out.extend(items);
                next = None;
                day = match day.pred_opt() {
                    Some(d) => d,
                    None => break,
                };
                if out.len() >= limit && day >= oldest {
                    next = Some(RejectionCursor {
                        day: day.format(DAY_FORMAT).to_string(),
                        sk: String::new(),
                    });
                }
                continue;
            }
        }
        let whole_day = start.is_none();
        let (items, last_sk) = rejections::newest_of_day(
            db,
            tables,
            &day.format(DAY_FORMAT).to_string(),
            limit - out.len(),
            start.take(),
        )
        .await?;
        if whole_day && last_sk.is_none() && day < final_before {
            if let Ok(mut days) = cache.whole_days.lock() {
                days.retain(|d, _| *d >= oldest);
                days.insert(day, (std::time::Instant::now(), items.clone()));
            }
        }
        out.extend(items);
        match last_sk {
            Some(sk) => {
                start = Some(sk.clone());
                next = Some(RejectionCursor {
                    day: day.format(DAY_FORMAT).to_string(),
                    sk,
                });
            }
            None => {
                next = None;
                day = match day.pred_opt() {
                    Some(d) => d,
                    None => break,
                };
                if out.len() >= limit && day >= oldest {
                    // The page is full at a day boundary: continue from the previous day.
                    next = Some(RejectionCursor {
                        day: day.format(DAY_FORMAT).to_string(),
                        sk: String::new(),
                    });
                }
            }
        }
    }
    Ok(RejectionPage {
        items: out,
        next_cursor: next.map(|c| cursors::encode(&c)),
    })
}
