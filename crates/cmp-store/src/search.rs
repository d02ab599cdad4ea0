//! How a substring search (`q`) runs, chosen from a sample of the inventory's search text.
//!
//! A term is answered one of two ways. A common term is found fastest by walking the sort
//! order and filtering: the page fills within a few rows. A rare term by the trigram index
//! (PostgreSQL's pg_trgm GIN, SQLite's FTS5 trigram table), and only if the index is asked for
//! the term's rare trigrams: both databases read the whole list of rows of every trigram they
//! are given, and a term such as `host500007.` shares `hos` and `ost` with every row. At 1M rows
//! on PostgreSQL that took 9.5 ms, against 0.25 ms for its rare part `t500007` (measured).
//! Neither database keeps statistics of trigrams, so the store keeps a small sample of rows,
//! taken in the background, and reads both choices off it as a planner would.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rows in a sample: enough to tell a term in 1% of the rows from one in a handful.
pub(crate) const SAMPLE_ROWS: usize = 2_000;

/// Age after which a sample is taken again, in the background.
const SAMPLE_TTL: Duration = Duration::from_secs(60);

/// A trigram is worth asking the index for when at most this share of rows holds it (1/20).
const RARE_TRIGRAM_SHARE: usize = 20;

/// Rare trigrams the index is asked for at most (see [`SearchPlan::index_trigrams`]).
const MAX_INDEX_TRIGRAMS: usize = 3;

type Trigram = [char; 3];

/// Search texts of a sample of rows, and in how many of them each trigram occurs.
#[derive(Debug, Default)]
pub(crate) struct SearchSample {
    texts: Vec<String>,
    rows_with: HashMap<Trigram, u32>,
}

/// How to run one search.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SearchPlan {
    /// Rows to walk in sort order first, where the term is expected to fill the page within
    /// half of them; none for a term expected to be rarer than that.
    pub walk: Option<usize>,
    /// The trigrams to ask the index for, all at once; every row it gives is then checked
    /// for the whole term. The rarest few of the term's rare trigrams, or every trigram of the
    /// term when none is rare; none when it is shorter than three. Both databases read the
    /// whole list of rows of each trigram they are asked for: for `host500007.` at 1M rows,
    /// the three rarest of its five rare trigrams give 21 rows to check instead of 2, and
    /// SQLite's lookup took 0.32 ms instead of 0.50 (measured).
    pub index_trigrams: Vec<String>,
}

/// The trigrams of a plan, without their counts.
fn names(trigrams: Vec<(u32, Trigram)>) -> Vec<String> {
    trigrams.into_iter().map(|(_, t)| t.iter().collect()).collect()
}

impl SearchSample {
    pub(crate) fn new(texts: Vec<String>) -> SearchSample {
        let mut rows_with: HashMap<Trigram, u32> = HashMap::new();
        let mut seen = HashSet::new();
        for text in &texts {
            seen.clear();
            let chars: Vec<char> = text.chars().collect();
            for w in chars.windows(3) {
                let trigram = [w[0], w[1], w[2]];
                if seen.insert(trigram) {
                    *rows_with.entry(trigram).or_default() += 1;
                }
            }
        }
        SearchSample { texts, rows_with }
    }

    /// The plan for `term` (lowercased), when a page of `wanted` rows is asked for and the
    /// walk may look at up to `max_walk` rows. Without a sample, the walk goes as far as it may
    /// and the index gets every trigram of the term, which is always right, if not always fast.
    pub(crate) fn plan(&self, term: &str, max_walk: usize, wanted: usize) -> SearchPlan {
        let rows = self.texts.len();
        let mut trigrams = self.trigrams_rarest_first(term);
        if rows == 0 {
            return SearchPlan { walk: Some(max_walk), index_trigrams: names(trigrams) };
        }
        let hits = self.texts.iter().filter(|t| t.contains(term)).count();
        // The rows the walk is expected to need, doubled for the sample's error.
        let needed = (wanted * rows).div_ceil(hits.max(1));
        let mut rare: Vec<(u32, Trigram)> = trigrams
            .iter()
            .copied()
            .filter(|(n, _)| *n as usize <= rows / RARE_TRIGRAM_SHARE)
            .collect();
        // With none rare, every trigram goes, which the index intersects as well as it can.
        if !rare.is_empty() {
            // Letters and digits first: PostgreSQL's pg_trgm indexes words, so a trigram with
            // punctuation (`0.0`) is looked up as pieces of words, or not at all.
            rare.sort_by_key(|&(n, t)| (!t.iter().all(|c| c.is_alphanumeric()), n, t));
            rare.truncate(MAX_INDEX_TRIGRAMS);
            trigrams = rare;
        }
        SearchPlan {
            walk: (hits > 0 && needed <= max_walk).then(|| (2 * needed).min(max_walk)),
            index_trigrams: names(trigrams),
        }
    }

    /// The trigrams of `term`, each once, with the sampled rows holding each, rarest first.
    fn trigrams_rarest_first(&self, term: &str) -> Vec<(u32, Trigram)> {
        let chars: Vec<char> = term.chars().collect();
        let mut trigrams: Vec<(u32, Trigram)> = chars
            .windows(3)
            .map(|w| [w[0], w[1], w[2]])
            .map(|t| (self.rows_with.get(&t).copied().unwrap_or(0), t))
            .collect();
        trigrams.sort();
        trigrams.dedup();
        trigrams
    }
}

/// The store's current sample, taken again in the background once it is old or the
/// inventory grew.
#[derive(Debug, Default)]
pub(crate) struct SampleCache {
    current: Mutex<Option<TakenSample>>,
    refreshing: AtomicBool,
}

#[derive(Debug)]
struct TakenSample {
    sample: Arc<SearchSample>,
    taken: Instant,
    /// The inventory changed a lot since.
    aged: bool,
}

/// What a caller of [`SampleCache::get`] must do.
pub(crate) enum SampleState {
    /// Use this sample.
    Fresh(Arc<SearchSample>),
    /// Use this sample, and take a new one in the background.
    Stale(Arc<SearchSample>),
    /// There is none: take one now.
    Missing,
}

impl SampleCache {
    pub(crate) fn get(&self) -> SampleState {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match &*current {
            None => SampleState::Missing,
            Some(TakenSample { sample, taken, aged }) if !aged && taken.elapsed() < SAMPLE_TTL => {
                SampleState::Fresh(sample.clone())
            }
            Some(TakenSample { sample, .. }) => {
                // Only one refresh at a time; the others keep using the old sample.
                if self.refreshing.swap(true, Ordering::AcqRel) {
                    SampleState::Fresh(sample.clone())
                } else {
                    SampleState::Stale(sample.clone())
                }
            }
        }
    }

    pub(crate) fn put(&self, sample: Arc<SearchSample>) {
        let taken = TakenSample { sample, taken: Instant::now(), aged: false };
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(taken);
        self.refreshing.store(false, Ordering::Release);
    }

    /// Ends a refresh that failed: the old sample stays, and the next search tries again.
    pub(crate) fn refresh_failed(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    /// Marks the sample old: the inventory changed a lot.
    pub(crate) fn age(&self) {
        if let Some(taken) = &mut *self.current.lock().unwrap_or_else(|p| p.into_inner()) {
            taken.aged = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows like the benchmark's: `host<i>.team<i % 50>.bench.example` and `alt<i>.bench.internal`.
    fn sample() -> SearchSample {
        SearchSample::new(
            (0..2_000u32)
                .map(|i| {
                    let n = i * 499 + 100_000; // spread over six digits, as a sample of 1M is
                    format!("cn=host{n}.team{}.bench.example\nalt{n}.bench.internal", n % 50)
                })
                .collect(),
        )
    }

    #[test]
    fn a_rare_term_goes_to_the_index_with_its_rarest_trigrams_only() {
        let plan = sample().plan("host500007.", 2_000, 101);
        assert_eq!(plan.walk, None);
        // `hos`, `ost` and `st5` are in every row or one in ten; of the rest, the three in
        // fewest sampled rows (`t50` and `07.` are in one row of a hundred, the others in
        // none), each once although `000` occurs twice in the term.
        assert_eq!(plan.index_trigrams, ["000", "007", "500"]);
    }

    #[test]
    fn a_common_trigram_is_not_asked_for_wherever_it_is_in_the_term() {
        // `000` in more than one sampled row in 20, in the middle of the term.
        let mut texts: Vec<String> = (0..150).map(|i| format!("cn=x{i}000.example")).collect();
        texts.extend((0..1_850).map(|i| format!("cn=web{i}.example")));
        let plan = SearchSample::new(texts).plan("host500007.", 2_000, 101);
        assert_eq!(plan.walk, None);
        // Never `000`: the rarest first (`hos`, `ost`, `st5` in no sampled row, `007` in one),
        // letters and digits before punctuation (`07.` is in none either).
        assert_eq!(plan.index_trigrams, ["hos", "ost", "st5"]);
        // Only punctuated trigrams are rare: they are asked for.
        let plan = sample().plan("10.0.0.1", 2_000, 101);
        assert_eq!(plan.index_trigrams, [".0.", "0.0", "0.1"]);
    }

    #[test]
    fn a_common_term_walks_first_as_far_as_it_needs() {
        // In one row of 50: 5,050 rows to fill a page, more than the walk may take.
        assert_eq!(sample().plan("team4.", 2_000, 101).walk, None);
        // In 11 rows of 50 (`team4`, `team40` to `team49`): 460 rows to fill it, walked twice over.
        assert_eq!(sample().plan("team4", 2_000, 101).walk, Some(920));
        // In every row: twice the page.
        let plan = sample().plan("bench.example", 2_000, 101);
        assert_eq!(plan.walk, Some(202));
        // Every trigram common: the index gets every trigram of the term.
        assert_eq!(plan.index_trigrams.len(), 11);
    }

    #[test]
    fn without_a_sample_the_walk_goes_first_then_every_trigram() {
        let plan = SearchSample::default().plan("host1", 2_000, 101);
        let expected = SearchPlan {
            walk: Some(2_000),
            index_trigrams: vec!["hos".into(), "ost".into(), "st1".into()],
        };
        assert_eq!(plan, expected);
        // Too short for a trigram: none.
        assert!(sample().plan("zq", 2_000, 101).index_trigrams.is_empty());
    }

    #[test]
    fn only_one_refresh_runs_at_a_time() {
        let cache = SampleCache::default();
        assert!(matches!(cache.get(), SampleState::Missing));
        cache.put(Arc::new(sample()));
        assert!(matches!(cache.get(), SampleState::Fresh(_)));
        cache.age();
        assert!(matches!(cache.get(), SampleState::Stale(_)));
        assert!(matches!(cache.get(), SampleState::Fresh(_)), "a refresh is already running");
        cache.refresh_failed();
        assert!(matches!(cache.get(), SampleState::Stale(_)));
    }
}
