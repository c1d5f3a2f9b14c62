//! Float sums that neither drift nor overflow: the one summation rule of
//! the rollup's stored sums and of dashboard-api's `sum` and `avg`.
//!
//! Plain `+=` loses a small term next to a large one: 2 + 8 + 1e100 −
//! 1e100 gives 0. Neumaier's compensated summation, which Prometheus uses
//! (`kahanSumInc` in its `promql/functions.go`), carries the lost low-order
//! part in a second float and gives 10. [`kahan_inc`] is that step,
//! IEEE semantics included (an infinity stays infinite, NaN propagates), as
//! PromQL needs; [`Sum`] adds saturation on top for what the rollup stores:
//! D1 turns an infinity into `null`, which the `sum REAL NOT NULL` column
//! refuses, so a stored sum saturates at ±`f64::MAX` instead.

/// One step of Neumaier's summation: adds `inc` to the running `sum` whose
/// accumulated compensation is `c`; returns the new pair. The total is
/// `sum + c`. An infinite running sum drops its compensation, as in
/// Prometheus.
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// `v`, saturated into the finite range: ±infinity become ±`f64::MAX`.
/// NaN stays NaN (callers never store it: see [`Sum::add`]).
pub fn saturate(v: f64) -> f64 {
    v.clamp(-f64::MAX, f64::MAX)
}

/// A compensated sum that stays finite: each term is added with
/// [`kahan_inc`], a total beyond ±`f64::MAX` saturates there, and a NaN
/// term (which validated input never holds) is ignored rather than
/// poisoning the total.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sum {
    value: f64,
    compensation: f64,
}

impl Sum {
    /// A sum that starts at `v` (a stored total).
    pub fn of(v: f64) -> Sum {
        let mut s = Sum::default();
        s.add(v);
        s
    }

    /// Adds one term.
    pub fn add(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        let (t, c) = kahan_inc(v, self.value, self.compensation);
        if t.is_finite() {
            (self.value, self.compensation) = (t, c);
        } else {
            // Saturated: nothing beyond f64::MAX is representable, so the
            // compensation has nothing left to correct.
            (self.value, self.compensation) = (saturate(t), 0.0);
        }
    }

    /// Adds another sum, compensation and all.
    pub fn add_sum(&mut self, other: &Sum) {
        self.add(other.value);
        self.add(other.compensation);
    }

    /// The total: finite, never NaN.
    pub fn value(&self) -> f64 {
        saturate(self.value + self.compensation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum_of(values: &[f64]) -> f64 {
        let mut s = Sum::default();
        values.iter().for_each(|&v| s.add(v));
        s.value()
    }

    #[test]
    fn small_terms_survive_large_ones() {
        // Prometheus' aggregators.test: sum of 2, 8, 1e100 and -1e100 is 10.
        assert_eq!(sum_of(&[2.0, 8.0, 1e100, -1e100]), 10.0);
        assert_eq!(sum_of(&[1e100, 2.0, -1e100, 8.0]), 10.0);
        // A thousand tenths: plain addition drifts off 100.
        let tenths = vec![0.1; 1000];
        assert_ne!(tenths.iter().sum::<f64>(), 100.0);
        assert_eq!(sum_of(&tenths), 100.0);
    }

    #[test]
    fn totals_saturate_and_stay_finite() {
        let big = 1.7e308;
        assert_eq!(sum_of(&[big, big]), f64::MAX);
        assert_eq!(sum_of(&[-big, -big, -big]), -f64::MAX);
        // Saturated and back: finite all the way, no NaN from inf − inf.
        let s = sum_of(&[big, big, -big, -big]);
        assert!(s.is_finite(), "{s}");
        assert_eq!(sum_of(&[f64::INFINITY, 1.0]), f64::MAX);
        assert_eq!(sum_of(&[f64::NAN, 1.0]), 1.0);
        let mut a = Sum::of(f64::MAX);
        a.add_sum(&Sum::of(f64::MAX));
        assert_eq!(a.value(), f64::MAX);
    }

    #[test]
    fn kahan_inc_keeps_ieee_infinities() {
        let (t, c) = kahan_inc(f64::INFINITY, 1.0, 0.5);
        assert_eq!((t, c), (f64::INFINITY, 0.0));
        let (t, _) = kahan_inc(f64::NAN, 1.0, 0.0);
        assert!(t.is_nan());
    }
}
