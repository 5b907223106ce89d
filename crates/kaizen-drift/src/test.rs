//! The drift tests by name, their default thresholds and comparisons, and Evidently 0.7's choice
//! of the default test for a column.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::DriftError;

/// Evidently's column types that drift handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Numeric,
    Categorical,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Numeric => "numeric",
            ColumnType::Categorical => "categorical",
        }
    }
}

/// A drift test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    Ks,
    Wasserstein,
    Chisquare,
    Z,
    Jensenshannon,
    Psi,
    KlDiv,
    Hellinger,
    Anderson,
    CramerVonMises,
    EnergyDistance,
}

/// How a test's score is compared with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Drift when the p-value is at most the threshold.
    PValueAtMost,
    /// Drift when the p-value is below the threshold.
    PValueBelow,
    /// Drift when the distance is at least the threshold.
    DistanceAtLeast,
    /// Drift when the distance is above the threshold.
    DistanceAbove,
}

impl Test {
    pub const ALL: [Test; 11] = [
        Test::Ks,
        Test::Wasserstein,
        Test::Chisquare,
        Test::Z,
        Test::Jensenshannon,
        Test::Psi,
        Test::KlDiv,
        Test::Hellinger,
        Test::Anderson,
        Test::CramerVonMises,
        Test::EnergyDistance,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Test::Ks => "ks",
            Test::Wasserstein => "wasserstein",
            Test::Chisquare => "chisquare",
            Test::Z => "z",
            Test::Jensenshannon => "jensenshannon",
            Test::Psi => "psi",
            Test::KlDiv => "kl_div",
            Test::Hellinger => "hellinger",
            Test::Anderson => "anderson",
            Test::CramerVonMises => "cramer_von_mises",
            Test::EnergyDistance => "energy_distance",
        }
    }

    /// Evidently's default threshold.
    pub fn default_threshold(self) -> f64 {
        match self {
            Test::Ks | Test::Chisquare | Test::Z => 0.05,
            _ => 0.1,
        }
    }

    /// Evidently's comparison of the score with the threshold.
    pub fn comparison(self) -> Comparison {
        match self {
            Test::Ks | Test::CramerVonMises => Comparison::PValueAtMost,
            Test::Chisquare | Test::Z | Test::Anderson => Comparison::PValueBelow,
            Test::EnergyDistance => Comparison::DistanceAbove,
            Test::Wasserstein | Test::Jensenshannon | Test::Psi | Test::KlDiv | Test::Hellinger => {
                Comparison::DistanceAtLeast
            }
        }
    }

    /// True when the score compared with the threshold is a p-value.
    pub fn has_p_value(self) -> bool {
        matches!(
            self.comparison(),
            Comparison::PValueAtMost | Comparison::PValueBelow
        )
    }

    /// The column types Evidently accepts for the test when it is chosen explicitly.
    pub fn applies_to(self, kind: ColumnType) -> bool {
        match self {
            Test::Ks
            | Test::Wasserstein
            | Test::Anderson
            | Test::CramerVonMises
            | Test::EnergyDistance => kind == ColumnType::Numeric,
            Test::Chisquare | Test::Z => kind == ColumnType::Categorical,
            Test::Jensenshannon | Test::Psi | Test::KlDiv | Test::Hellinger => true,
        }
    }

    pub(crate) fn allowed(self) -> &'static str {
        match self {
            Test::Chisquare | Test::Z => "categorical",
            Test::Jensenshannon | Test::Psi | Test::KlDiv | Test::Hellinger => {
                "numeric or categorical"
            }
            _ => "numeric",
        }
    }

    /// Whether `score` against `threshold` means drift.
    pub fn drifted(self, score: f64, threshold: f64) -> bool {
        match self.comparison() {
            Comparison::PValueAtMost => score <= threshold,
            Comparison::PValueBelow => score < threshold,
            Comparison::DistanceAtLeast => score >= threshold,
            Comparison::DistanceAbove => score > threshold,
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Test {
    type Err = DriftError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let alias = match t.as_str() {
            "ed" | "energy" => "energy_distance",
            "chi2" | "chi_square" => "chisquare",
            "js" | "jensen_shannon" => "jensenshannon",
            "kl" => "kl_div",
            "cvm" | "cramer" => "cramer_von_mises",
            "anderson_darling" => "anderson",
            other => other,
        };
        Test::ALL
            .into_iter()
            .find(|t| t.name() == alias)
            .ok_or_else(|| DriftError::UnknownTest { test: s.to_owned() })
    }
}

/// Evidently's `_get_default_stattest`: `reference_rows` and `distinct` count values after
/// missing ones are dropped (`distinct` over reference and current together).
pub fn default_test(kind: ColumnType, reference_rows: usize, distinct: usize) -> Test {
    let small = reference_rows <= 1000;
    match (kind, small) {
        (ColumnType::Numeric, true) if distinct <= 5 => {
            if distinct > 2 {
                Test::Chisquare
            } else {
                Test::Z
            }
        }
        (ColumnType::Numeric, true) => Test::Ks,
        (ColumnType::Categorical, true) => {
            if distinct > 2 {
                Test::Chisquare
            } else {
                Test::Z
            }
        }
        (ColumnType::Numeric, false) if distinct <= 5 => Test::Jensenshannon,
        (ColumnType::Numeric, false) => Test::Wasserstein,
        (ColumnType::Categorical, false) => Test::Jensenshannon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_choice_follows_evidently() {
        use ColumnType::*;
        assert_eq!(default_test(Numeric, 1000, 6), Test::Ks);
        assert_eq!(default_test(Numeric, 1001, 6), Test::Wasserstein);
        assert_eq!(default_test(Numeric, 1000, 5), Test::Chisquare);
        assert_eq!(default_test(Numeric, 1000, 2), Test::Z);
        assert_eq!(default_test(Numeric, 5000, 5), Test::Jensenshannon);
        assert_eq!(default_test(Categorical, 10, 3), Test::Chisquare);
        assert_eq!(default_test(Categorical, 10, 2), Test::Z);
        assert_eq!(default_test(Categorical, 1001, 2), Test::Jensenshannon);
    }

    #[test]
    fn comparisons_are_evidentlys() {
        assert!(Test::Ks.drifted(0.05, 0.05));
        assert!(!Test::Chisquare.drifted(0.05, 0.05));
        assert!(Test::Wasserstein.drifted(0.1, 0.1));
        assert!(!Test::EnergyDistance.drifted(0.1, 0.1));
        assert_eq!("ed".parse::<Test>().unwrap(), Test::EnergyDistance);
        assert!("nope".parse::<Test>().is_err());
    }
}
