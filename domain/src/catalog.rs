//! The catalog as the API reads it: every product, kept sorted by stock, by name, by last
//! update and by id, with the words of each name indexed, so a page of any of those orders,
//! filtered by status, by low stock or by a search, is exact over the whole catalog and
//! costs no read. Pure: the API fills it from DynamoDB (a load, then the products each
//! batch changed) and asks it for pages.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::api::ProductView;
use crate::rfc3339;
use crate::state::ProductStatus;

/// What a page is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    ProductId,
    Name,
    Quantity,
    UpdatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// A page's question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogQuery {
    /// One status, or every product.
    pub status: Option<ProductStatus>,
    /// Only products at or under this stock (active ones: a removed product has none).
    pub low_stock: Option<u64>,
    /// Words, each the start of a word of the name or of the id, case-insensitive; a
    /// product matches when every word does.
    pub search: Option<String>,
    pub sort: SortKey,
    pub order: SortOrder,
    pub limit: usize,
    /// Where the previous page ended.
    pub after: Option<Position>,
}

/// A product's place in one order: the page after it starts after it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub key: SortValue,
    pub product_id: String,
}

/// The value a product is sorted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    Number(u64),
    Text(String),
}

/// A page, and where the next one starts (`None` on the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogPage {
    pub items: Vec<ProductView>,
    pub next: Option<Position>,
    /// Products that match the question, all pages together.
    pub matching: usize,
}

/// Every product, indexed.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    products: HashMap<String, ProductView>,
    by_quantity: BTreeSet<(u64, String)>,
    by_name: BTreeSet<(String, String)>,
    /// By the text a cursor carries (to the millisecond, so text order is time order).
    by_updated: BTreeSet<(String, String)>,
    by_product_id: BTreeSet<(String, String)>,
    /// Lowercase id → id.
    by_id: BTreeMap<String, String>,
    /// Lowercase word of a name → the products whose name has it.
    words: BTreeMap<String, BTreeSet<String>>,
}

/// The words of a name, lowercase: runs of letters and digits.
pub fn words(name: &str) -> BTreeSet<String> {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl Catalog {
    pub fn len(&self) -> usize {
        self.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    pub fn get(&self, product_id: &str) -> Option<&ProductView> {
        self.products.get(product_id)
    }

    /// Adds or replaces a product. An older version never replaces a newer one (two reads
    /// of one product may come back out of order).
    pub fn upsert(&mut self, product: ProductView) {
        if self
            .products
            .get(&product.product_id)
            .is_some_and(|held| held.version > product.version)
        {
            return;
        }
        self.remove(&product.product_id.clone());
        let id = product.product_id.clone();
        self.by_quantity.insert((product.quantity, id.clone()));
        self.by_name
            .insert((product.product_name.to_lowercase(), id.clone()));
        self.by_updated
            .insert((rfc3339::to_millis(&product.updated_at), id.clone()));
        self.by_id.insert(id.to_lowercase(), id.clone());
        self.by_product_id.insert((id.clone(), id.clone()));
        for word in words(&product.product_name) {
            self.words.entry(word).or_default().insert(id.clone());
        }
        self.products.insert(id, product);
    }

    pub fn remove(&mut self, product_id: &str) {
        let Some(old) = self.products.remove(product_id) else {
            return;
        };
        let id = old.product_id;
        self.by_quantity.remove(&(old.quantity, id.clone()));
        self.by_name
            .remove(&(old.product_name.to_lowercase(), id.clone()));
        self.by_updated
            .remove(&(rfc3339::to_millis(&old.updated_at), id.clone()));
        self.by_id.remove(&id.to_lowercase());
        self.by_product_id.remove(&(id.clone(), id.clone()));
        for word in words(&old.product_name) {
            if let Some(ids) = self.words.get_mut(&word) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.words.remove(&word);
                }
            }
        }
    }

    /// The products whose name has a word starting with `term`, or whose id does.
    fn matching_term(&self, term: &str) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .words
            .range(term.to_owned()..)
            .take_while(|(w, _)| w.starts_with(term))
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect();
        out.extend(
            self.by_id
                .range(term.to_owned()..)
                .take_while(|(k, _)| k.starts_with(term))
                .map(|(_, id)| id.clone()),
        );
        out
    }

    fn position_of(&self, p: &ProductView, sort: SortKey) -> Position {
        let key = match sort {
            SortKey::ProductId => SortValue::Text(p.product_id.clone()),
            SortKey::Name => SortValue::Text(p.product_name.to_lowercase()),
            SortKey::Quantity => SortValue::Number(p.quantity),
            SortKey::UpdatedAt => SortValue::Text(rfc3339::to_millis(&p.updated_at)),
        };
        Position {
            key,
            product_id: p.product_id.clone(),
        }
    }

    /// One page of the question: exact over the whole catalog.
    pub fn query(&self, q: &CatalogQuery) -> CatalogPage {
        let passes = |p: &ProductView| {
            q.status.is_none_or(|s| p.status == s)
                && q.low_stock
                    .is_none_or(|t| p.status == ProductStatus::Active && p.quantity <= t)
        };
        let limit = q.limit.max(1);
        let terms: Vec<String> = q
            .search
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        // A search narrows to a few products first; otherwise walk the whole order.
        let ordered: Box<dyn Iterator<Item = &ProductView> + '_> = if terms.is_empty() {
            self.walk(q)
        } else {
            let mut found: Option<BTreeSet<String>> = None;
            for term in &terms {
                let these = self.matching_term(term);
                found = Some(match found {
                    None => these,
                    Some(prev) => prev.intersection(&these).cloned().collect(),
                });
            }
            let mut hits: Vec<(Position, &ProductView)> = found
                .unwrap_or_default()
                .iter()
                .filter_map(|id| self.products.get(id))
                .map(|p| (self.position_of(p, q.sort), p))
                .collect();
            hits.sort_by(|a, b| a.0.cmp(&b.0));
            if q.order == SortOrder::Desc {
                hits.reverse();
            }
            let after = q.after.clone();
            let order = q.order;
            Box::new(
                hits.into_iter()
                    .filter(move |(pos, _)| match &after {
                        None => true,
                        Some(a) if order == SortOrder::Asc => pos > a,
                        Some(a) => pos < a,
                    })
                    .map(|(_, p)| p)
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
        };
        let mut items: Vec<ProductView> = Vec::with_capacity(limit);
        let mut more = false;
        for p in ordered.filter(|p| passes(p)) {
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(p.clone());
        }
        let next = more
            .then(|| items.last().map(|p| self.position_of(p, q.sort)))
            .flatten();
        let matching = if terms.is_empty() && q.status.is_none() && q.low_stock.is_none() {
            self.products.len()
        } else {
            self.count(q, &terms)
        };
        CatalogPage {
            items,
            next,
            matching,
        }
    }

    /// How many products match the question's filters and search.
    fn count(&self, q: &CatalogQuery, terms: &[String]) -> usize {
        let passes = |p: &ProductView| {
            q.status.is_none_or(|s| p.status == s)
                && q.low_stock
                    .is_none_or(|t| p.status == ProductStatus::Active && p.quantity <= t)
        };
        if terms.is_empty() {
            if q.status.is_none() {
                if let Some(t) = q.low_stock {
                    // Sorted by stock: the low ones are a prefix.
                    return self
                        .by_quantity
                        .range(..=(t, String::from("\u{10FFFF}")))
                        .filter(|(_, id)| self.products.get(id).is_some_and(&passes))
                        .count();
                }
            }
            return self.products.values().filter(|p| passes(p)).count();
        }
        let mut found: Option<BTreeSet<String>> = None;
        for term in terms {
            let these = self.matching_term(term);
            found = Some(match found {
                None => these,
                Some(prev) => prev.intersection(&these).cloned().collect(),
            });
        }
        found
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.products.get(id))
            .filter(|p| passes(p))
            .count()
    }

    /// Every product in the question's order, from after its position.
    fn walk<'a>(&'a self, q: &CatalogQuery) -> Box<dyn Iterator<Item = &'a ProductView> + 'a> {
        use std::ops::Bound::{Excluded, Unbounded};
        let get = move |id: &String| self.products.get(id);
        let text_after = |after: &Option<Position>| match after {
            Some(Position {
                key: SortValue::Text(k),
                product_id,
            }) => Some((k.clone(), product_id.clone())),
            _ => None,
        };
        macro_rules! walk_set {
            ($set:expr, $after:expr) => {{
                let after = $after;
                match (q.order, after) {
                    (SortOrder::Asc, None) => {
                        Box::new($set.iter().filter_map(move |(_, id)| get(id)))
                    }
                    (SortOrder::Asc, Some(a)) => Box::new(
                        $set.range((Excluded(a), Unbounded))
                            .filter_map(move |(_, id)| get(id)),
                    ),
                    (SortOrder::Desc, None) => {
                        Box::new($set.iter().rev().filter_map(move |(_, id)| get(id)))
                    }
                    (SortOrder::Desc, Some(a)) => Box::new(
                        $set.range((Unbounded, Excluded(a)))
                            .rev()
                            .filter_map(move |(_, id)| get(id)),
                    ),
                }
            }};
        }
        match q.sort {
            SortKey::Quantity => {
                let after = match &q.after {
                    Some(Position {
                        key: SortValue::Number(n),
                        product_id,
                    }) => Some((*n, product_id.clone())),
                    _ => None,
                };
                walk_set!(self.by_quantity, after)
            }
            SortKey::Name => walk_set!(self.by_name, text_after(&q.after)),
            SortKey::UpdatedAt => walk_set!(self.by_updated, text_after(&q.after)),
            SortKey::ProductId => walk_set!(self.by_product_id, text_after(&q.after)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use proptest::prelude::*;

    fn product(id: &str, name: &str, quantity: u64, active: bool, updated: u32) -> ProductView {
        ProductView {
            product_id: id.into(),
            product_name: name.into(),
            quantity,
            status: if active {
                ProductStatus::Active
            } else {
                ProductStatus::Removed
            },
            version: 1,
            last_event_at: DateTime::from_timestamp(1_796_551_200, 0).unwrap(),
            updated_at: DateTime::from_timestamp_millis(
                1_796_551_200_000 + i64::from(updated % 60_000),
            )
            .unwrap(),
        }
    }

    fn query(sort: SortKey, order: SortOrder, limit: usize) -> CatalogQuery {
        CatalogQuery {
            status: None,
            low_stock: None,
            search: None,
            sort,
            order,
            limit,
            after: None,
        }
    }

    /// Every page of `q`, following each page's `next`.
    fn all_pages(c: &Catalog, q: &CatalogQuery) -> Vec<String> {
        let mut q = q.clone();
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let page = c.query(&q);
            out.extend(page.items.iter().map(|p| p.product_id.clone()));
            match page.next {
                Some(next) => q.after = Some(next),
                None => return out,
            }
        }
        panic!("more than 10,000 pages");
    }

    #[test]
    fn the_lowest_and_highest_stock_are_the_whole_catalogs() {
        let mut c = Catalog::default();
        for (i, q) in [2957u64, 6105, 1, 8108, 5, 15, 40].iter().enumerate() {
            c.upsert(product(&format!("P{i}"), "Widget", *q, true, 0));
        }
        let low = c.query(&query(SortKey::Quantity, SortOrder::Asc, 3));
        let stock: Vec<u64> = low.items.iter().map(|p| p.quantity).collect();
        assert_eq!(stock, vec![1, 5, 15]);
        let high = c.query(&query(SortKey::Quantity, SortOrder::Desc, 2));
        let stock: Vec<u64> = high.items.iter().map(|p| p.quantity).collect();
        assert_eq!(stock, vec![8108, 6105]);
        assert_eq!(low.matching, 7);
    }

    #[test]
    fn a_word_of_the_name_or_the_start_of_the_id_finds_a_product_case_insensitively() {
        let mut c = Catalog::default();
        c.upsert(product("shop-P1", "Blue Steel Kettle", 3, true, 0));
        c.upsert(product("shop-P2", "Kettle descaler", 3, true, 0));
        c.upsert(product("other-P3", "Teapot", 3, true, 0));
        let find = |s: &str| {
            let mut q = query(SortKey::ProductId, SortOrder::Asc, 10);
            q.search = Some(s.into());
            c.query(&q)
                .items
                .into_iter()
                .map(|p| p.product_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(find("kettle"), vec!["shop-P1", "shop-P2"]);
        assert_eq!(find("STEEL"), vec!["shop-P1"]);
        assert_eq!(find("kett desc"), vec!["shop-P2"], "every word must match");
        assert_eq!(find("shop"), vec!["shop-P1", "shop-P2"], "an id prefix");
        assert_eq!(find("OTHER-p"), vec!["other-P3"]);
        assert!(find("eel").is_empty(), "words are matched from their start");
    }

    #[test]
    fn low_stock_is_active_products_at_or_under_the_threshold() {
        let mut c = Catalog::default();
        c.upsert(product("a", "x", 0, true, 0));
        c.upsert(product("b", "x", 5, true, 0));
        c.upsert(product("c", "x", 6, true, 0));
        c.upsert(product("d", "x", 0, false, 0));
        let mut q = query(SortKey::Quantity, SortOrder::Asc, 10);
        q.low_stock = Some(5);
        let page = c.query(&q);
        let ids: Vec<&str> = page.items.iter().map(|p| p.product_id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert_eq!(page.matching, 2);
    }

    #[test]
    fn an_update_moves_a_product_and_an_older_version_does_not_replace_a_newer_one() {
        let mut c = Catalog::default();
        c.upsert(product("a", "Old name", 10, true, 0));
        let mut newer = product("a", "New name", 1, true, 1);
        newer.version = 3;
        c.upsert(newer);
        let mut older = product("a", "Stale", 99, true, 2);
        older.version = 2;
        c.upsert(older);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("a").map(|p| p.quantity), Some(1));
        let mut q = query(SortKey::Name, SortOrder::Asc, 10);
        q.search = Some("old".into());
        assert!(
            c.query(&q).items.is_empty(),
            "the old name's words are gone"
        );
        q.search = Some("new".into());
        assert_eq!(c.query(&q).items.len(), 1);
    }

    fn sort_value(p: &ProductView, sort: SortKey) -> (SortValue, String) {
        let key = match sort {
            SortKey::ProductId => SortValue::Text(p.product_id.clone()),
            SortKey::Name => SortValue::Text(p.product_name.to_lowercase()),
            SortKey::Quantity => SortValue::Number(p.quantity),
            SortKey::UpdatedAt => SortValue::Text(rfc3339::to_millis(&p.updated_at)),
        };
        (key, p.product_id.clone())
    }

    fn sort_key() -> impl Strategy<Value = SortKey> {
        prop_oneof![
            Just(SortKey::ProductId),
            Just(SortKey::Name),
            Just(SortKey::Quantity),
            Just(SortKey::UpdatedAt)
        ]
    }

    proptest! {
        /// Paging through any order, with any filter and search, after any updates and
        /// removals, gives exactly the catalog filtered and sorted, each product once.
        #[test]
        fn every_page_of_every_question_is_the_whole_catalog_filtered_and_sorted(
            ops in prop::collection::vec((0u8..40, 0u8..6, 0u64..50, any::<bool>(), 0u32..5000, any::<bool>()), 1..200),
            sort in sort_key(),
            desc in any::<bool>(),
            limit in 1usize..15,
            status in prop::option::of(any::<bool>()),
            low in prop::option::of(0u64..50),
            search in prop::option::of(prop_oneof![Just("red"), Just("re"), Just("p1"), Just("big red"), Just("cup")]),
        ) {
            const NAMES: [&str; 6] = ["Red cup", "Big red mug", "Blue cup", "RED", "Plate", "big Bowl"];
            let mut c = Catalog::default();
            let mut model: BTreeMap<String, ProductView> = BTreeMap::new();
            for (i, (id, name, q, active, updated, remove)) in ops.into_iter().enumerate() {
                let id = format!("P{id}");
                if remove {
                    c.remove(&id);
                    model.remove(&id);
                    continue;
                }
                let mut p = product(&id, NAMES[name as usize], q, active, updated);
                p.version = i as u64 + 1;
                c.upsert(p.clone());
                model.insert(id, p);
            }
            let q = CatalogQuery {
                status: status.map(|a| if a { ProductStatus::Active } else { ProductStatus::Removed }),
                low_stock: low,
                search: search.map(str::to_owned),
                sort,
                order: if desc { SortOrder::Desc } else { SortOrder::Asc },
                limit,
                after: None,
            };
            let terms: Vec<String> = q.search.iter().flat_map(|s| s.split_whitespace()).map(str::to_lowercase).collect();
            let mut want: Vec<&ProductView> = model.values().filter(|p| {
                q.status.is_none_or(|s| p.status == s)
                    && q.low_stock.is_none_or(|t| p.status == ProductStatus::Active && p.quantity <= t)
                    && terms.iter().all(|t| words(&p.product_name).iter().any(|w| w.starts_with(t.as_str()))
                        || p.product_id.to_lowercase().starts_with(t.as_str()))
            }).collect();
            want.sort_by_key(|a| sort_value(a, sort));
            if desc {
                want.reverse();
            }
            let want: Vec<String> = want.into_iter().map(|p| p.product_id.clone()).collect();
            prop_assert_eq!(all_pages(&c, &q), want.clone());
            prop_assert_eq!(c.query(&q).matching, want.len());
        }
    }
}
