//! `/api/rejections`: rejected records newest first, a Query per UTC day of arrival (the
//! store's key scheme and its Query, [`inventory_store::rejections::newest_of_day`]), paged across days.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Days, NaiveDate, Utc};
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

/// The days a page looks through, as of one moment.
#[derive(Debug, Clone, Copy)]
struct DaysKept {
    today: NaiveDate,
    /// The oldest day whose rejections are still kept.
    oldest: NaiveDate,
    /// Days before this one are past: no more records of them are expected.
    final_before: NaiveDate,
}

impl DaysKept {
    fn at(now: DateTime<Utc>) -> Self {
        let today = now.date_naive();
        Self {
            today,
            oldest: today
                .checked_sub_days(Days::new(DAYS_KEPT))
                .unwrap_or(today),
            final_before: (now - chrono::Duration::minutes(DAY_FINAL_AFTER_MINUTES)).date_naive(),
        }
    }
}

impl RejectionsCache {
    /// `day`'s rejections, read whole less than [`PAST_DAY_KEPT`] ago, when they fit in
    /// `room`.
    fn whole_day(&self, day: NaiveDate, room: usize) -> Option<Vec<RejectionView>> {
        self.whole_days
            .lock()
            .ok()
            .and_then(|days| days.get(&day).cloned())
            .filter(|(read_at, _)| read_at.elapsed() < PAST_DAY_KEPT)
            .map(|(_, items)| items)
            .filter(|items| items.len() <= room)
    }

    /// Keeps a past day read whole, and forgets the days no longer kept.
    fn keep(&self, day: NaiveDate, items: &[RejectionView], oldest: NaiveDate) {
        if let Ok(mut days) = self.whole_days.lock() {
            days.retain(|d, _| *d >= oldest);
            days.insert(day, (std::time::Instant::now(), items.to_vec()));
        }
    }
}

/// Up to `limit` rejections, newest first, from `cursor` on (today's newest without one),
/// going back a day at a time through the days kept.
pub async fn rejections_page(
    db: &Client,
    tables: &Tables,
    cache: &RejectionsCache,
    limit: usize,
    cursor: Option<&str>,
) -> Result<RejectionPage, ApiError> {
    let days = DaysKept::at(Utc::now());
    let (mut day, mut start) = page_start(cursor, days.today)?;
    let mut out = Vec::new();
    let mut next = None;
    // Bounded: at most one Query per page-full or per day kept.
    while day >= days.oldest && out.len() < limit {
        let room = limit - out.len();
        let last_sk = match start
            .is_none()
            .then(|| cache.whole_day(day, room))
            .flatten()
        {
            Some(items) => {
                out.extend(items);
                None
            }
            None => {
                let (items, last_sk) =
                    read_day(db, tables, cache, days, day, room, start.take()).await?;
                out.extend(items);
                last_sk
            }
        };
        match last_sk {
            Some(sk) => {
                start = Some(sk.clone());
                next = Some(RejectionCursor {
                    day: day_key(day),
                    sk,
                });
            }
            None => {
                let Some(before) = day.pred_opt() else {
                    next = None;
                    break;
                };
                day = before;
                next = next_after_day(day, out.len() >= limit, days.oldest);
            }
        }
    }
    Ok(RejectionPage {
        items: out,
        next_cursor: next.map(|c| cursors::encode(&c)),
    })
}

/// The day a page starts at, and the sort key after which to go on in it (`None`: from its
/// newest): today's newest without a cursor.
fn page_start(
    cursor: Option<&str>,
    today: NaiveDate,
) -> Result<(NaiveDate, Option<String>), ApiError> {
    let Some(cursor) = cursor else {
        return Ok((today, None));
    };
    let c: RejectionCursor = cursors::decode(cursor)?;
    let day = NaiveDate::parse_from_str(&c.day, DAY_FORMAT).map_err(|_| cursors::invalid())?;
    Ok((day, Some(c.sk).filter(|sk| !sk.is_empty())))
}

/// One Query of `day`'s rejections from `start` on (its newest when `None`), at most `room`,
/// and the sort key to go on after when there are more. A past day read whole is kept.
async fn read_day(
    db: &Client,
    tables: &Tables,
    cache: &RejectionsCache,
    days: DaysKept,
    day: NaiveDate,
    room: usize,
    start: Option<String>,
) -> Result<(Vec<RejectionView>, Option<String>), ApiError> {
    let whole_day = start.is_none();
    let (items, last_sk) =
        rejections::newest_of_day(db, tables, &day_key(day), room, start).await?;
    if whole_day && last_sk.is_none() && day < days.final_before {
        cache.keep(day, &items, days.oldest);
    }
    Ok((items, last_sk))
}

/// Where the next page starts once a day is done and `day`, the one before it, is next:
/// from `day`'s newest when this page is full and `day` is still kept; nowhere otherwise
/// (the page goes on with `day`, or there is nothing older).
fn next_after_day(day: NaiveDate, full: bool, oldest: NaiveDate) -> Option<RejectionCursor> {
    (full && day >= oldest).then(|| RejectionCursor {
        day: day_key(day),
        sk: String::new(),
    })
}

fn day_key(day: NaiveDate) -> String {
    day.format(DAY_FORMAT).to_string()
}
