//! Regression check: each figure's ratio against a saved baseline.
//!
//! The ratio (value ÷ its same-run limit) is the number compared, not the
//! absolute value: both sides of a ratio are measured seconds apart on the
//! same cores, so it survives a busier or quieter machine far better than
//! a raw figure does. A figure whose ratio got worse by more than
//! [`TOLERANCE`] is a regression; the driver exits with status 1 so a
//! regression is a failing run, not a line to overlook.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// How much worse a ratio may get before it counts as a regression (20 %).
pub const TOLERANCE: f64 = 0.20;

/// Which direction of a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughput: more per second is better.
    Higher,
    /// Time, latency or bytes: less is better.
    Lower,
}

impl Better {
    /// The direction a unit implies: rates (`…/s`) are higher-is-better,
    /// everything else (ms, µs, ns, bytes) lower-is-better.
    pub fn of_unit(unit: &str) -> Better {
        if unit.ends_with("/s") {
            Better::Higher
        } else {
            Better::Lower
        }
    }
}

/// One figure as saved in a baseline file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// value ÷ limit, the compared number.
    pub ratio: f64,
    /// The absolute value, for the reader.
    pub value: f64,
    /// Unit of `value`.
    pub unit: String,
    /// Which direction is better.
    pub better: Better,
}

/// A baseline: figure key → entry, plus where it was measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Free text: machine, load average, commit.
    #[serde(default)]
    pub measured_on: String,
    /// Figures by stable key.
    #[serde(default)]
    pub figures: BTreeMap<String, Entry>,
}

/// The comparison of one figure with its baseline.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Figure key.
    pub key: String,
    /// Baseline ratio.
    pub base: f64,
    /// This run's ratio.
    pub now: f64,
    /// How much worse (positive) or better (negative) the ratio is, as a
    /// fraction of the baseline, in the figure's own direction.
    pub worse_by: f64,
}

impl Verdict {
    /// Whether this is a regression beyond [`TOLERANCE`].
    pub fn regressed(&self) -> bool {
        self.worse_by > TOLERANCE
    }
}

impl Baseline {
    /// Reads a baseline file; the error names the file and what is wrong.
    pub fn load(path: &Path) -> Result<Baseline, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read baseline {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("baseline {} is not a valid baseline: {e}", path.display()))
    }

    /// Writes the baseline as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write baseline {}: {e}", path.display()))
    }

    /// Compares this run (`now`) with the baseline, figure by figure; a
    /// figure missing on either side is skipped (a partial `--only` run
    /// checks what it measured). Ratios that are not finite are skipped.
    pub fn compare(&self, now: &Baseline) -> Vec<Verdict> {
        let mut out = Vec::new();
        for (key, cur) in &now.figures {
            let Some(base) = self.figures.get(key) else {
                continue;
            };
            if !(base.ratio.is_finite() && cur.ratio.is_finite()) || base.ratio <= 0.0 {
                continue;
            }
            let change = (cur.ratio - base.ratio) / base.ratio;
            let worse_by = match base.better {
                Better::Higher => -change,
                Better::Lower => change,
            };
            out.push(Verdict {
                key: key.clone(),
                base: base.ratio,
                now: cur.ratio,
                worse_by,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ratio: f64, unit: &str) -> Entry {
        Entry {
            ratio,
            value: ratio,
            unit: unit.into(),
            better: Better::of_unit(unit),
        }
    }

    fn baseline(figs: &[(&str, f64, &str)]) -> Baseline {
        Baseline {
            measured_on: String::new(),
            figures: figs
                .iter()
                .map(|(k, r, u)| (k.to_string(), entry(*r, u)))
                .collect(),
        }
    }

    #[test]
    fn a_throughput_drop_beyond_20_percent_is_a_regression() {
        let base = baseline(&[("whoami", 0.5, "req/s")]);
        let v = base.compare(&baseline(&[("whoami", 0.39, "req/s")]));
        assert!(v[0].regressed(), "{v:?}");
        let v = base.compare(&baseline(&[("whoami", 0.41, "req/s")]));
        assert!(!v[0].regressed(), "{v:?}");
    }

    #[test]
    fn a_latency_rise_beyond_20_percent_is_a_regression() {
        let base = baseline(&[("cold", 1.0, "ms")]);
        assert!(base.compare(&baseline(&[("cold", 1.25, "ms")]))[0].regressed());
        assert!(!base.compare(&baseline(&[("cold", 1.15, "ms")]))[0].regressed());
        // Faster is never a regression.
        assert!(!base.compare(&baseline(&[("cold", 0.2, "ms")]))[0].regressed());
    }

    #[test]
    fn figures_missing_on_either_side_are_skipped() {
        let base = baseline(&[("a", 1.0, "ms")]);
        assert!(base.compare(&baseline(&[("b", 9.0, "ms")])).is_empty());
    }

    #[test]
    fn a_baseline_round_trips_through_its_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("b.json");
        let base = baseline(&[("a", 1.5, "users/s")]);
        base.save(&path).expect("save");
        let back = Baseline::load(&path).expect("load");
        assert_eq!(back.figures["a"].better, Better::Higher);
        assert_eq!(back.figures["a"].ratio, 1.5);
        std::fs::write(&path, "{not json").expect("write");
        let err = Baseline::load(&path).expect_err("broken file");
        assert!(err.contains("b.json"), "{err}");
    }
}
