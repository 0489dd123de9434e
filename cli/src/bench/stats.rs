//! Summaries of repeated measurements.

/// Median, minimum and maximum of a set of samples.
///
/// The median rather than the mean: one run disturbed by the machine (a page-cache miss, another
/// process) would drag a mean along, but barely moves a median.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// Summarizes `samples`, which must not be empty.
    pub fn of(samples: impl IntoIterator<Item = f64>) -> Self {
        let mut sorted: Vec<f64> = samples.into_iter().collect();
        assert!(!sorted.is_empty(), "no samples");
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 };
        Self { median, min: sorted[0], max: sorted[sorted.len() - 1] }
    }
}

/// One metric, measured in the sandbox and natively.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Comparison {
    pub sandbox: Stats,
    pub native: Stats,
}

impl Comparison {
    /// Sandbox median over native median: above 1 the sandbox has more of it (time, memory),
    /// below 1 less (throughput).
    pub fn ratio(&self) -> f64 {
        self.sandbox.median / self.native.median
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_counts_take_the_middle_sample() {
        let stats = Stats::of([5.0, 1.0, 3.0]);
        assert_eq!((stats.median, stats.min, stats.max), (3.0, 1.0, 5.0));
    }

    #[test]
    fn even_counts_average_the_two_middle_samples() {
        let stats = Stats::of([4.0, 1.0, 2.0, 10.0]);
        assert_eq!((stats.median, stats.min, stats.max), (3.0, 1.0, 10.0));
    }

    #[test]
    fn one_sample_is_all_three() {
        let stats = Stats::of([7.5]);
        assert_eq!((stats.median, stats.min, stats.max), (7.5, 7.5, 7.5));
    }

    #[test]
    fn the_ratio_is_of_medians() {
        let comparison = Comparison { sandbox: Stats::of([1.0, 6.0, 100.0]), native: Stats::of([2.0, 3.0, 4.0]) };
        assert_eq!(comparison.ratio(), 2.0);
    }
}
