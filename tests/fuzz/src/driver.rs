//! The stable-toolchain fuzz driver: a small mutational fuzzer.
//!
//! It starts from a target's seeds and regression files, applies stacked
//! random mutations (bit flips, interesting bytes, dictionary tokens,
//! deletions, duplications, splices, truncation) and keeps an input in its
//! corpus when it produced an *outcome* the run had not seen yet (each
//! target names the outcome class of an input: accepted, or the kind of
//! refusal), a cheap stand-in for libFuzzer's coverage feedback. A panic
//! is a finding: the input is written to `<crash_dir>/<target>-<hash>` and
//! reported with the seed that found it.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// splitmix64: tiny, seedable, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// What one driver run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Inputs executed.
    pub executions: u64,
    /// Distinct outcomes seen.
    pub outcomes: usize,
    /// Corpus size at the end.
    pub corpus: usize,
    /// Wall-clock time spent.
    pub elapsed: Duration,
}

/// A finding: the input that made the target panic.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Where the input was saved.
    pub path: PathBuf,
    /// The panic message.
    pub message: String,
    /// The input.
    pub input: Vec<u8>,
}

/// Longest input the driver builds.
pub const MAX_LEN: usize = 4096;

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'"', b'\\', b'\n', b'\r', b'\t', b' ', b'=', b'@', b'.', b';', b',',
    b'[', b']', b'{', b'}', b':', b'-', b'0', b'9', b'a', b'Z', 0xc3, 0xe2, 0xf0,
];

/// What one driver run works with.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Starting inputs.
    pub seeds: Vec<Vec<u8>>,
    /// Inputs replayed first (earlier findings); a panic there is a finding at once.
    pub regressions: Vec<Vec<u8>>,
    /// Tokens spliced into inputs.
    pub dictionary: Vec<Vec<u8>>,
    /// How long to mutate.
    pub budget: Duration,
    /// The random seed.
    pub seed: u64,
    /// Where findings are written.
    pub crash_dir: PathBuf,
}

/// Runs `target` (named `name`) for the campaign's budget: first every
/// regression input, then the seeds, then mutations of whatever was kept.
/// `target` returns the outcome class of an input.
pub fn drive(
    name: &str,
    target: &dyn Fn(&[u8]) -> String,
    campaign: Campaign,
) -> Result<Report, Finding> {
    let Campaign {
        seeds,
        regressions,
        dictionary,
        budget,
        seed,
        crash_dir,
    } = campaign;
    let crash_dir = crash_dir.as_path();
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut state = State {
        seen: HashSet::new(),
        corpus: Vec::new(),
        executions: 0,
    };
    let execute = |state: &mut State, input: &[u8]| -> Result<(), Finding> {
        state.executions += 1;
        match catch_unwind(AssertUnwindSafe(|| target(input))) {
            Ok(outcome) => {
                if state.seen.insert(outcome) && state.corpus.len() < 4096 {
                    state.corpus.push(input.to_vec());
                }
                Ok(())
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_else(|| "non-string panic".to_string());
                Err(save_finding(name, input, message, crash_dir))
            }
        }
    };
    for input in regressions.iter().chain(seeds.iter()) {
        execute(&mut state, input)?;
    }
    if state.corpus.is_empty() {
        state.corpus.push(Vec::new());
    }
    while started.elapsed() < budget {
        let base = state.corpus[rng.below(state.corpus.len())].clone();
        let other = state.corpus[rng.below(state.corpus.len())].clone();
        let input = mutate(base, &other, &dictionary, &mut rng);
        execute(&mut state, &input)?;
    }
    Ok(Report {
        executions: state.executions,
        outcomes: state.seen.len(),
        corpus: state.corpus.len(),
        elapsed: started.elapsed(),
    })
}

struct State {
    seen: HashSet<String>,
    corpus: Vec<Vec<u8>>,
    executions: u64,
}

fn save_finding(name: &str, input: &[u8], message: String, crash_dir: &Path) -> Finding {
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = crash_dir.join(format!("{name}-{hash:016x}"));
    let _ = std::fs::create_dir_all(crash_dir);
    let _ = std::fs::write(&path, input);
    Finding {
        path,
        message,
        input: input.to_vec(),
    }
}

/// One to four stacked mutations of `base`.
pub fn mutate(mut data: Vec<u8>, other: &[u8], dictionary: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        match rng.below(10) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 | 3 if !dictionary.is_empty() => {
                let word = &dictionary[rng.below(dictionary.len())];
                let at = rng.below(data.len() + 1);
                data.splice(at..at, word.iter().copied());
            }
            4 if !data.is_empty() => {
                let start = rng.below(data.len());
                let len = 1 + rng.below((data.len() - start).min(16));
                data.drain(start..start + len);
            }
            5 if !data.is_empty() => {
                let start = rng.below(data.len());
                let len = 1 + rng.below((data.len() - start).min(32));
                let chunk: Vec<u8> = data[start..start + len].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, chunk);
            }
            6 if !other.is_empty() => {
                let cut = rng.below(data.len() + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            7 => {
                let at = rng.below(data.len() + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(at..at, bytes);
            }
            8 if !data.is_empty() => {
                let cut = rng.below(data.len());
                data.truncate(cut);
            }
            _ => {
                let at = rng.below(data.len() + 1);
                let c = b"az09_.-@\"{}[]:,"[rng.below(15)];
                data.insert(at, c);
            }
        }
    }
    data.truncate(MAX_LEN);
    data
}

/// The files of `dir` (sorted; none when it does not exist).
pub fn read_dir_inputs(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}
