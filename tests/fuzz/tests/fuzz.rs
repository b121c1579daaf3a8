//! The stable fuzz harness: runs every target of `syshost_fuzz` under the
//! mutational driver for a bounded time (`SYSHOST_FUZZ_SECONDS` per target,
//! default 3; `.ci/run` uses 15), after replaying every file of
//! `fuzz/regressions/<target>/`. A finding is saved to
//! `target/fuzz-findings/<target>-<hash>` and fails the test; copy it into
//! `fuzz/regressions/<target>/` once fixed. `SYSHOST_FUZZ_SEED` fixes the
//! random seed (it is printed on every run).

use std::path::{Path, PathBuf};
use std::time::Duration;

use syshost_fuzz::driver::{drive, read_dir_inputs, Campaign};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_target(name: &str) {
    let seconds: f64 = std::env::var("SYSHOST_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let seed: u64 = std::env::var("SYSHOST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let regressions = read_dir_inputs(&workspace().join("fuzz/regressions").join(name));
    let replayed = regressions.len();
    let target = |data: &[u8]| syshost_fuzz::run(name, data);
    let campaign = Campaign {
        seeds: syshost_fuzz::seeds(name),
        regressions,
        dictionary: syshost_fuzz::dictionary(name),
        budget: Duration::from_secs_f64(seconds),
        seed,
        crash_dir: workspace().join("target/fuzz-findings"),
    };
    match drive(name, &target, campaign) {
        Ok(report) => eprintln!(
            "fuzz {name}: seed {seed}, {replayed} regression inputs, {} executions in {:.1} s, {} distinct outcomes",
            report.executions,
            report.elapsed.as_secs_f64(),
            report.outcomes
        ),
        Err(finding) => panic!(
            "fuzz {name} (SYSHOST_FUZZ_SEED={seed}) found: {}\ninput saved to {}\ninput: {:?}",
            finding.message,
            finding.path.display(),
            String::from_utf8_lossy(&finding.input)
        ),
    }
}

#[test]
fn config() {
    run_target("config");
}

#[test]
fn manifest() {
    run_target("manifest");
}

#[test]
fn email() {
    run_target("email");
}

#[test]
fn token() {
    run_target("token");
}

#[test]
fn operations() {
    run_target("operations");
}

/// Writes every target's seeds to `fuzz/corpus/<target>/` as starting
/// points for `cargo fuzz run` (run with `-- --ignored`).
#[test]
#[ignore]
fn write_seed_corpus() {
    for name in syshost_fuzz::TARGETS {
        let dir = workspace().join("fuzz/corpus").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in syshost_fuzz::seeds(name).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:04}")), seed).unwrap();
        }
    }
}
