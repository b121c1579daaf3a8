//! `syshost-bench`: the whole-process and HTTP benchmarks of BENCHMARKS.md.
//!
//! Every figure is printed next to the limit it is compared with, measured
//! in the same run on the same cores, as a ratio, with the issue's target.
//! It drives the real release binary (`syshost` next to this executable)
//! and the plugin libraries built with it (the seven systems and `audit`); load comes from `wrk`;
//! the reference Argon2 implementation (libargon2) through Python's
//! argon2-cffi. Build and run:
//!
//! ```sh
//! cargo build --release && cargo build --release -p syshost-bench
//! python3 -m venv target/bench-venv && target/bench-venv/bin/pip install argon2-cffi
//! ./target/release/syshost-bench            # everything (~15 min, ~6 GB disk)
//! ./target/release/syshost-bench --only argon2,cold,http
//! ./target/release/syshost-bench --smoke    # tiny sizes, a few seconds per figure
//! ./target/release/syshost-bench --baseline bench/baseline.json   # exit 1 on a > 20 % regression
//! ```

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

/// The allocator of the `syshost` binary (host/src/main.rs), so the limits
/// this process measures (sled alone, the micro figures) use the same one.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod baseline;

use syshost_bench::micro;

/// The plugin libraries `enable = ["user"]` activates: the seven systems and
/// `audit`, which `user` wants.
const SYSTEMS: [&str; 8] = [
    "audit",
    "license",
    "role",
    "permission",
    "group",
    "settings",
    "session",
    "user",
];
const ADMIN_EMAIL: &str = "bench-admin@example.com";
const ADMIN_PASSWORD: &str = "bench-admin-password-2026";
const SEED: u64 = 1;
/// Search term of the user-list figure: one of the generator's last names
/// (about 1 user in 40 matches).
const SEARCH: &str = "smith";

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "syshost-bench",
    about = "syshost benchmarks: each figure next to its limit"
)]
struct Opts {
    /// Tiny sizes and 1-second loads: checks that every figure runs.
    #[arg(long)]
    smoke: bool,
    /// Comma-separated figure groups: argon2, micro, cold, http, import, list, large
    /// (`whoami`: only the whoami figure of `http`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Users of the large dataset (cold start and user list at scale).
    #[arg(long, default_value_t = 1_000_000)]
    large_users: u64,
    /// Users of the import figure (and the first user-list size).
    #[arg(long, default_value_t = 100_000)]
    import_users: u64,
    /// Seconds per wrk load and per argon2 measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Where datasets go (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Python with argon2-cffi (default: target/bench-venv/bin/python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Also write the results as a Markdown table to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Compare each figure's ratio with this baseline file (e.g.
    /// `bench/baseline.json`); exit 1 if any got worse by more than 20 %.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Save this run's ratios as a baseline file.
    #[arg(long)]
    save_baseline: Option<PathBuf>,
    /// Internal: time discovering the plugin libraries in DIR and opening a
    /// fresh sled store, in this fresh process (the cold-start floor).
    #[arg(long, hide = true, value_name = "DIR")]
    floor_probe: Option<PathBuf>,
}

/// One measured figure next to its limit.
#[derive(Debug, Clone)]
struct Figure {
    /// Stable name of the figure in baselines (no run-dependent numbers).
    key: String,
    what: String,
    value: f64,
    unit: &'static str,
    limit_what: String,
    limit: f64,
    /// The issue's target, in words.
    target: String,
    /// Whether the target is met (`None`: no pass/fail).
    met: Option<bool>,
}

impl Figure {
    fn ratio(&self) -> f64 {
        if self.limit == 0.0 {
            f64::NAN
        } else {
            self.value / self.limit
        }
    }
}

struct Bench {
    opts: Opts,
    bin: PathBuf,
    plugins: tempfile::TempDir,
    work: PathBuf,
    _work_tmp: Option<tempfile::TempDir>,
    figures: Vec<Figure>,
    argon2_rate: Option<f64>,
}

fn main() {
    let opts = Opts::parse();
    if let Some(dir) = &opts.floor_probe {
        floor_probe(dir);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let dir = exe.parent().expect("exe dir").to_path_buf();
    let bin = dir.join("syshost");
    if !bin.is_file() {
        eprintln!(
            "error: {} not found; run `cargo build --release` first",
            bin.display()
        );
        std::process::exit(2);
    }
    let plugins = tempfile::tempdir().expect("temp dir");
    for id in SYSTEMS {
        let file = format!("libsyshost_plugin_{id}.so");
        let lib = dir.join(&file);
        if !lib.is_file() {
            eprintln!(
                "error: {} not found; run `cargo build --release` first",
                lib.display()
            );
            std::process::exit(2);
        }
        std::os::unix::fs::symlink(&lib, plugins.path().join(&file)).expect("symlink plugin");
    }
    let (work, work_tmp) = match &opts.work_dir {
        Some(w) => {
            std::fs::create_dir_all(w).expect("create work dir");
            (w.clone(), None)
        }
        None => {
            let t = tempfile::tempdir_in(dir.parent().unwrap_or(&dir)).expect("temp dir");
            (t.path().to_path_buf(), Some(t))
        }
    };
    let mut b = Bench {
        opts,
        bin,
        plugins,
        work,
        _work_tmp: work_tmp,
        figures: Vec::new(),
        argon2_rate: None,
    };
    machine_report();
    if b.opts.smoke {
        b.opts.large_users = b.opts.large_users.min(3_000);
        b.opts.import_users = b.opts.import_users.min(2_000);
        b.opts.seconds = b.opts.seconds.min(1);
    }
    let started = Instant::now();
    if b.wants("argon2") || b.wants("http") {
        b.argon2();
    }
    if b.wants("micro") {
        b.micro();
    }
    if b.wants("cold") {
        b.cold_start_empty();
    }
    if b.wants("http") || b.wants("whoami") {
        b.http();
    }
    if b.wants("import") || b.wants("list") {
        b.import_and_list();
    }
    if b.wants("large") {
        b.large();
    }
    b.print();
    eprintln!("total time {:.0} s", started.elapsed().as_secs_f64());
    if !b.check_baseline() {
        std::process::exit(1);
    }
}

fn machine_report() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {cores} cores, {cpu}; load average at start: {}",
        load.trim()
    );
}

impl Bench {
    fn wants(&self, group: &str) -> bool {
        self.opts.only.is_empty() || self.opts.only.iter().any(|g| g == group)
    }

    fn push(&mut self, f: Figure) {
        println!(
            "{:<58} {:>12.3} {:<8} | limit {:<44} {:>12.3} | ratio {:>7.3} | target {} {}",
            f.what,
            f.value,
            f.unit,
            f.limit_what,
            f.limit,
            f.ratio(),
            f.target,
            match f.met {
                Some(true) => "MET",
                Some(false) => "MISSED",
                None => "",
            }
        );
        self.figures.push(f);
    }

    fn print(&self) {
        let mut md = String::from(
            "| figure | value | limit | limit value | ratio | target | met |\n|---|---|---|---|---|---|---|\n",
        );
        for f in &self.figures {
            md.push_str(&format!(
                "| {} | {:.3} {} | {} | {:.3} {} | {:.3} | {} | {} |\n",
                f.what,
                f.value,
                f.unit,
                f.limit_what,
                f.limit,
                f.unit,
                f.ratio(),
                f.target,
                match f.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "–",
                }
            ));
        }
        println!("\n{md}");
        if let Some(path) = &self.opts.markdown {
            if let Err(e) = std::fs::write(path, &md) {
                eprintln!("cannot write {}: {e}", path.display());
            }
        }
    }

    fn secs(&self) -> Duration {
        Duration::from_secs(self.opts.seconds.max(1))
    }

    // -----------------------------------------------------------------
    // argon2id: the crate and libargon2, all cores, same parameters.
    // -----------------------------------------------------------------

    fn argon2(&mut self) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let fresh = argon2_crate_rate(threads, self.secs(), Memory::Fresh);
        let reused = argon2_crate_rate(threads, self.secs(), Memory::Reused);
        // The user system's pooled buffers (2 MiB-aligned, transparent huge
        // pages): the fastest way to run the crate here, so part of the limit.
        let huge = argon2_crate_rate(threads, self.secs(), Memory::HugePages);
        self.push(Figure {
            key: "argon2.crate_hugepages_vs_reused".into(),
            what: format!("argon2 crate, reused huge-page memory ({threads} threads)"),
            value: huge,
            unit: "hash/s",
            limit_what: "argon2 crate, reused memory blocks".into(),
            limit: reused,
            target: "–".into(),
            met: None,
        });
        self.argon2_rate = Some(fresh.max(reused).max(huge));
        let python = self.opts.python.clone().unwrap_or_else(|| {
            self.bin
                .parent()
                .and_then(Path::parent)
                .map(|t| t.join("bench-venv/bin/python3"))
                .unwrap_or_default()
        });
        let reference = libargon2_rate(&python, threads, self.secs());
        match reference {
            Ok(r) => {
                self.push(Figure {
                    key: "argon2.crate_fresh_vs_libargon2".into(),
                    what: format!("argon2 crate, new memory per hash ({threads} threads)"),
                    value: fresh,
                    unit: "hash/s",
                    limit_what: "libargon2 (argon2-cffi), same params".into(),
                    limit: r,
                    target: "as fast as the reference".into(),
                    met: Some(fresh >= 0.95 * r),
                });
                self.push(Figure {
                    key: "argon2.crate_reused_vs_libargon2".into(),
                    what: format!("argon2 crate, reused memory blocks ({threads} threads)"),
                    value: reused,
                    unit: "hash/s",
                    limit_what: "libargon2 (argon2-cffi), same params".into(),
                    limit: r,
                    target: "as fast as the reference".into(),
                    met: Some(reused >= 0.95 * r),
                });
                self.argon2_rate = Some(fresh.max(reused).max(huge).max(r));
            }
            Err(e) => {
                eprintln!("libargon2 reference skipped: {e}");
                self.push(Figure {
                    key: "argon2.crate_reused_vs_fresh".into(),
                    what: format!("argon2 crate, reused memory blocks ({threads} threads)"),
                    value: reused,
                    unit: "hash/s",
                    limit_what: "argon2 crate, new memory per hash".into(),
                    limit: fresh,
                    target: "–".into(),
                    met: None,
                });
            }
        }
    }

    // -----------------------------------------------------------------
    // In-process micro figures (the criterion benches' measurements).
    // -----------------------------------------------------------------

    fn micro(&mut self) {
        let data = self.work.join("micro");
        let _ = std::fs::remove_dir_all(&data);
        let d = if self.opts.smoke {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(3)
        };
        let m = match micro::measure(self.plugins.path(), &data, d) {
            Ok(m) => m,
            Err(e) => panic!("micro figures: {e}"),
        };
        let _ = std::fs::remove_dir_all(&data);
        self.push(Figure {
            key: "micro.call_round_trip".into(),
            what: "cross-plugin call round trip (permission.check, 3 ids)".into(),
            value: m.call_round_trip_ns / 1000.0,
            unit: "µs",
            limit_what: "direct Rust call, same serde work".into(),
            limit: m.call_direct_ns / 1000.0,
            target: "≤ 2× and < 5 µs".into(),
            met: Some(
                m.call_round_trip_ns <= 2.0 * m.call_direct_ns && m.call_round_trip_ns < 5000.0,
            ),
        });
        self.push(Figure {
            key: "micro.permission_check".into(),
            what: "permission check on a cached subject (Host::subject)".into(),
            value: m.cached_subject_ns,
            unit: "ns",
            limit_what: "HashSet<String>::contains".into(),
            limit: m.hash_set_ns,
            target: "< 100 ns".into(),
            met: Some(m.cached_subject_ns < 100.0),
        });
    }

    /// Saves and/or compares the baseline; false if a figure regressed.
    fn check_baseline(&self) -> bool {
        let now = baseline::Baseline {
            measured_on: format!(
                "{} cores; load average at the end: {}",
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                std::fs::read_to_string("/proc/loadavg")
                    .unwrap_or_default()
                    .trim()
            ),
            figures: self
                .figures
                .iter()
                .map(|f| {
                    (
                        f.key.clone(),
                        baseline::Entry {
                            ratio: f.ratio(),
                            value: f.value,
                            unit: f.unit.into(),
                            better: baseline::Better::of_unit(f.unit),
                        },
                    )
                })
                .collect(),
        };
        if let Some(path) = &self.opts.save_baseline {
            match now.save(path) {
                Ok(()) => println!("baseline saved to {}", path.display()),
                Err(e) => eprintln!("error: {e}"),
            }
        }
        let Some(path) = &self.opts.baseline else {
            return true;
        };
        let base = match baseline::Baseline::load(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {e}");
                return false;
            }
        };
        let verdicts = base.compare(&now);
        let mut ok = true;
        println!(
            "\nagainst baseline {} ({}):",
            path.display(),
            base.measured_on
        );
        for v in &verdicts {
            println!(
                "  {:<34} ratio {:>9.3} (baseline {:>9.3}): {:+.0} % {}",
                v.key,
                v.now,
                v.base,
                -v.worse_by * 100.0,
                if v.regressed() {
                    ok = false;
                    "REGRESSION (worse by more than 20 %)"
                } else {
                    "ok"
                }
            );
        }
        if verdicts.is_empty() {
            println!("  no figure of this run is in the baseline");
        }
        ok
    }

    // -----------------------------------------------------------------
    // Servers and datasets.
    // -----------------------------------------------------------------

    fn env(&self, data: &Path) -> Vec<(String, String)> {
        vec![
            ("SYSHOST_DATA_DIR".into(), data.display().to_string()),
            (
                "SYSHOST_PLUGIN_DIRS".into(),
                self.plugins.path().display().to_string(),
            ),
            ("SYSHOST_LOG".into(), "warn".into()),
            (
                "SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE".into(),
                "100000".into(),
            ),
            ("SYSHOST_ADMIN_EMAIL".into(), ADMIN_EMAIL.into()),
            ("SYSHOST_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ]
    }

    /// Starts `syshost run` on `data` and waits for `/readyz`; returns the
    /// server and the time from spawn to the first 200.
    fn start(&self, data: &Path) -> (Server, Duration) {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let child = Command::new(&self.bin)
            .arg("run")
            .envs(self.env(data))
            .env("SYSHOST_HTTP_ADDR", &addr)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn syshost run");
        let server = Server {
            child,
            base: format!("http://{addr}"),
        };
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", server.base)).send() {
                if r.status().is_success() {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(120) {
                panic!("syshost did not become ready within 120 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        (server, started.elapsed())
    }

    /// `syshost dev seed --users n` on `data`; returns the users/s it printed
    /// and the wall time.
    fn seed(&self, data: &Path, users: u64) -> (f64, Duration) {
        let started = Instant::now();
        let out = Command::new(&self.bin)
            .args(["dev", "seed", "--users", &users.to_string()])
            .arg("--seed")
            .arg(SEED.to_string())
            .envs(self.env(data))
            .output()
            .expect("run syshost dev seed");
        let wall = started.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "seed failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        // The server only creates its first administrator on a store
        // without accounts: add one for the admin-only figures.
        let mut admin = Command::new(&self.bin)
            .args(["admin", "create", "--email", ADMIN_EMAIL])
            .envs(self.env(data))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run syshost admin create");
        if let Some(mut stdin) = admin.stdin.take() {
            writeln!(stdin, "{ADMIN_PASSWORD}").expect("write the admin password");
        }
        assert!(
            admin.wait().expect("admin create").success(),
            "admin create failed"
        );
        let rate = text
            .split(" users/s")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
        (rate, wall)
    }

    fn cold_start_empty(&mut self) {
        let runs = if self.opts.smoke { 3 } else { 10 };
        let mut times = Vec::new();
        for i in 0..runs {
            let data = self.work.join(format!("cold-{i}"));
            let _ = std::fs::remove_dir_all(&data);
            let (server, t) = self.start(&data);
            drop(server);
            times.push(t.as_secs_f64() * 1000.0);
            let _ = std::fs::remove_dir_all(&data);
        }
        let median = median(&mut times);
        let floor = load_floor_ms(&self.plugins);
        self.push(Figure {
            key: "cold.empty".into(),
            what: format!("cold start to /readyz, empty store (median of {runs})"),
            value: median,
            unit: "ms",
            limit_what: "exec + dlopen 8 libraries + open sled".into(),
            limit: floor,
            target: "< 150 ms".into(),
            met: Some(median < 150.0),
        });
    }

    // -----------------------------------------------------------------
    // HTTP: whoami vs static 200, login and registration vs argon2.
    // -----------------------------------------------------------------

    fn http(&mut self) {
        let users = if self.opts.smoke { 200 } else { 1000 };
        let data = self.work.join("http");
        let _ = std::fs::remove_dir_all(&data);
        self.seed(&data, users);
        let (server, _) = self.start(&data);
        let client = reqwest::blocking::Client::new();
        let token = login(
            &client,
            &server.base,
            &seed_email(0),
            syshost::dataset::DEFAULT_SEED_PASSWORD,
        );
        let admin = login(&client, &server.base, ADMIN_EMAIL, ADMIN_PASSWORD);
        let d = self.secs();

        let stat = wrk(&server.base, "/healthz", None, 32, d, false);
        let script = lua_post("/api/v1/session/whoami", "{}", Some(&token));
        let whoami = wrk(&server.base, "/", Some(&script), 32, d, false);
        self.push(Figure {
            key: "http.whoami".into(),
            what: "session.whoami over HTTP (authenticated, wrk -c32)".into(),
            value: whoami.rps,
            unit: "req/s",
            limit_what: "same server, static 200 (/healthz)".into(),
            limit: stat.rps,
            target: "≥ 50 %".into(),
            met: Some(whoami.rps >= 0.5 * stat.rps && whoami.errors == 0),
        });
        if !self.wants("http") {
            // `--only whoami`: just this figure.
            drop(server);
            let _ = std::fs::remove_dir_all(&data);
            return;
        }

        let argon = self.argon2_rate.unwrap_or(f64::NAN);
        // Login: rotate over the seeded users that are enabled (the
        // generator disables ~3 %; their logins would fail after a hash).
        let emails: Vec<String> = (0..users)
            .map(|i| syshost::dataset::generated_user(SEED, i, 1, "x"))
            .filter(|u| u["status"]["state"] == "enabled")
            .filter_map(|u| u["email"].as_str().map(str::to_string))
            .collect();
        let script = lua_login(&emails, syshost::dataset::DEFAULT_SEED_PASSWORD);
        let logins = wrk(&server.base, "/", Some(&script), 16, d, false);
        self.push(Figure {
            key: "http.login".into(),
            what: format!("login over HTTP (wrk -c16, {} non-2xx)", logins.errors),
            value: logins.rps,
            unit: "req/s",
            limit_what: "argon2id hashes/s, all cores, best impl.".into(),
            limit: argon,
            target: "≥ 85 %".into(),
            met: Some(logins.rps >= 0.85 * argon && logins.errors == 0),
        });

        // Registration: allow it, then unique addresses per request.
        let doc: Value = client
            .post(format!("{}/api/v1/settings/get", server.base))
            .bearer_auth(&admin)
            .json(&json!({"section": "user"}))
            .send()
            .and_then(|r| r.json())
            .expect("settings.get");
        let mut document = doc["document"].clone();
        document["self_registration"] = json!(true);
        let put = client
            .post(format!("{}/api/v1/settings/put", server.base))
            .bearer_auth(&admin)
            .json(&json!({"section": "user", "document": document}))
            .send()
            .expect("settings.put");
        assert!(put.status().is_success(), "settings.put: {:?}", put.text());
        let script = lua_register();
        // 64 connections: every registration answer takes at least 100 ms (the
        // anti-enumeration floor), so 8 connections would cap it at 80/s.
        let regs = wrk(&server.base, "/", Some(&script), 64, d, false);
        self.push(Figure {
            key: "http.registration".into(),
            what: format!("registration over HTTP (wrk -c64, {} non-2xx)", regs.errors),
            value: regs.rps,
            unit: "req/s",
            limit_what: "argon2id hashes/s, all cores, best impl.".into(),
            limit: argon,
            target: "≥ 80 %".into(),
            met: Some(regs.rps >= 0.8 * argon && regs.errors == 0),
        });
        drop(server);
        let _ = std::fs::remove_dir_all(&data);
    }

    // -----------------------------------------------------------------
    // Import, bytes per user, user list at the import size.
    // -----------------------------------------------------------------

    fn import_and_list(&mut self) {
        let n = self.opts.import_users;
        let data = self.work.join("import");
        let _ = std::fs::remove_dir_all(&data);
        let (rate, wall) = self.seed(&data, n);
        let (raw, keys) = raw_user_bytes(&data);
        let sled_rate = sled_batch_rate(&data, n, &self.work.join("sled-limit"));
        self.push(Figure {
            key: "import.rate".into(),
            what: format!(
                "bulk import of {n} users (dev seed, 1000/batch; wall {:.1} s)",
                wall.as_secs_f64()
            ),
            value: rate,
            unit: "users/s",
            limit_what: "sled: same keys/values, same 1000-user batches".into(),
            limit: sled_rate,
            target: "> 20 000 users/s".into(),
            met: Some(rate > 20_000.0),
        });
        let disk = dir_size(&data.join("store")) as f64 / n as f64;
        self.push(Figure {
            key: "import.bytes_per_user".into(),
            what: format!("bytes on disk per user after import ({keys} keys)"),
            value: disk,
            unit: "B/user",
            limit_what: "raw keys + values per user".into(),
            limit: raw,
            target: "≤ 3×".into(),
            met: Some(disk <= 3.0 * raw),
        });
        if self.wants("list") {
            self.user_list(&data, n);
        }
        let _ = std::fs::remove_dir_all(&data);
    }

    fn user_list(&mut self, data: &Path, n: u64) {
        let (server, _) = self.start(data);
        let client = reqwest::blocking::Client::new();
        let admin = login(&client, &server.base, ADMIN_EMAIL, ADMIN_PASSWORD);
        let body = json!({"search": SEARCH, "sort": "email", "limit": 50}).to_string();
        // The first list starts the user index build (seconds at 1 M users;
        // lists answer `unavailable` after a few seconds while the build goes
        // on in the background): ask again until one answers.
        let started = Instant::now();
        let (check, build) = loop {
            let check: Value = client
                .post(format!("{}/api/v1/user/list", server.base))
                .bearer_auth(&admin)
                .body(body.clone())
                .header("content-type", "application/json")
                .send()
                .and_then(|r| r.json())
                .expect("user.list");
            if check["total"].is_u64() || started.elapsed() > Duration::from_secs(300) {
                break (check, started.elapsed());
            }
        };
        println!(
            "user index built by the first list: {:.1} s ({n} users)",
            build.as_secs_f64()
        );
        let total = check["total"].as_u64().unwrap_or(0);
        let script = lua_post("/api/v1/user/list", &body, Some(&admin));
        let run = wrk(&server.base, "/", Some(&script), 1, self.secs(), true);
        drop(server);
        let (b50, b99) = in_memory_list(n, SEARCH);
        let scale = if n == self.opts.large_users {
            "large"
        } else {
            "import"
        };
        for (label, value, base, pct) in [
            ("p50", run.p50_ms, b50, "p50"),
            ("p99", run.p99_ms, b99, "p99"),
        ] {
            let target_met = if pct == "p99" && n >= 1_000_000 {
                Some(value < 10.0)
            } else {
                None
            };
            self.push(Figure {
                key: format!("list.{label}.{scale}"),
                what: format!(
                    "user.list {label}, {n} users, sort email, search '{SEARCH}' ({total} hits), page 50"
                ),
                value,
                unit: "ms",
                limit_what: "in-memory sorted index, same query".into(),
                limit: base,
                target: if n >= 1_000_000 { "p99 < 10 ms at 1 M".into() } else { "–".into() },
                met: target_met,
            });
        }
    }

    // -----------------------------------------------------------------
    // The large dataset: cold start and user list.
    // -----------------------------------------------------------------

    fn large(&mut self) {
        let n = self.opts.large_users;
        let data = self.work.join("large");
        if !data.join("store").is_dir() {
            let (rate, wall) = self.seed(&data, n);
            println!(
                "seeded {n} users in {:.0} s ({rate:.0} users/s)",
                wall.as_secs_f64()
            );
        }
        let runs = if self.opts.smoke { 2 } else { 5 };
        let mut times = Vec::new();
        for _ in 0..runs {
            let (server, t) = self.start(&data);
            drop(server);
            times.push(t.as_secs_f64() * 1000.0);
        }
        let median = median(&mut times);
        let floor = load_floor_ms(&self.plugins);
        self.push(Figure {
            key: "large.cold".into(),
            what: format!("cold start to /readyz, {n} users (median of {runs})"),
            value: median,
            unit: "ms",
            limit_what: "exec + dlopen 8 libraries + open sled".into(),
            limit: floor,
            target: "< 1 s".into(),
            met: Some(median < 1000.0),
        });
        self.user_list(&data, n);
    }
}

/// A running `syshost run`, stopped with SIGTERM on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The address of the `i`-th user of the benchmark dataset.
fn seed_email(i: u64) -> String {
    let user = syshost::dataset::generated_user(SEED, i, 1, "x");
    user["email"].as_str().unwrap_or_default().to_string()
}

fn login(client: &reqwest::blocking::Client, base: &str, email: &str, password: &str) -> String {
    let resp: Value = client
        .post(format!("{base}/api/v1/session/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .and_then(|r| r.json())
        .expect("login");
    resp["session_token"]
        .as_str()
        .unwrap_or_else(|| panic!("login of {email} failed: {resp}"))
        .to_string()
}

/// The floor of a cold start: a fresh process (this driver, `--floor-probe`)
/// that discovers and loads the plugin libraries (dlopen and the abi_stable
/// checks) and opens a fresh sled store — spawn to exit, median of 5, the
/// same way the cold start itself is timed.
fn load_floor_ms(plugins: &tempfile::TempDir) -> f64 {
    let exe = std::env::current_exe().expect("own path");
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let status = Command::new(&exe)
            .arg("--floor-probe")
            .arg(plugins.path())
            .stdout(Stdio::null())
            .status()
            .expect("spawn the floor probe");
        assert!(status.success(), "the floor probe failed");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    median(&mut times)
}

/// The work of the floor probe, in a fresh process.
fn floor_probe(plugins: &Path) {
    let dir = tempfile::tempdir().expect("temp dir");
    let discovery = syshost::discovery::discover(&[plugins.to_path_buf()]);
    if discovery.plugins.len() != SYSTEMS.len() {
        eprintln!("floor probe: {:?}", discovery.errors);
        std::process::exit(1);
    }
    let db = sled::open(dir.path().join("store")).expect("sled");
    db.flush().expect("flush");
}

// ---------------------------------------------------------------------
// Argon2.
// ---------------------------------------------------------------------

fn argon2_params() -> argon2::Params {
    argon2::Params::new(19_456, 2, 1, Some(32)).expect("valid params")
}

/// Where [`argon2_crate_rate`] hashes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Memory {
    /// A fresh Argon2 memory per hash (`hash_password_into`).
    Fresh,
    /// One pre-faulted `Vec<Block>` per thread, reused.
    Reused,
    /// One buffer per thread like the user system's pool: 2 MiB-aligned,
    /// advised for transparent huge pages, pre-faulted, reused.
    HugePages,
}

/// Hashes/s of the argon2 crate on `threads` threads for `d`, in `memory`.
fn argon2_crate_rate(threads: usize, d: Duration, memory: Memory) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let count = count.clone();
            s.spawn(move || {
                let hasher = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    argon2_params(),
                );
                let n = argon2_params().block_count();
                let mut blocks = vec![argon2::Block::default(); n];
                let mut huge = (memory == Memory::HugePages).then(|| {
                    syshost_plugin_user::password::BlockBuffer::new(n).expect("block buffer")
                });
                let salt = [t as u8; 16];
                let mut out = [0u8; 32];
                let mut i = 0u64;
                while started.elapsed() < d {
                    let pw = format!("password-{t}-{i}");
                    let result = match (memory, huge.as_mut()) {
                        (Memory::Fresh, _) => {
                            hasher.hash_password_into(pw.as_bytes(), &salt, &mut out)
                        }
                        (_, Some(buffer)) => hasher.hash_password_into_with_memory(
                            pw.as_bytes(),
                            &salt,
                            &mut out,
                            buffer.blocks_mut(),
                        ),
                        (_, None) => hasher.hash_password_into_with_memory(
                            pw.as_bytes(),
                            &salt,
                            &mut out,
                            &mut blocks,
                        ),
                    };
                    result.expect("hash");
                    std::hint::black_box(&out);
                    i += 1;
                }
                count.fetch_add(i, Ordering::Relaxed);
            });
        }
    });
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Hashes/s of libargon2 through argon2-cffi, one process per core.
fn libargon2_rate(python: &Path, procs: usize, d: Duration) -> Result<f64, String> {
    if !python.is_file() {
        return Err(format!(
            "{} not found (python3 -m venv target/bench-venv && target/bench-venv/bin/pip install argon2-cffi)",
            python.display()
        ));
    }
    let script = format!(
        r#"
import multiprocessing, time
from argon2.low_level import hash_secret_raw, Type
D = {secs}
def work(t):
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < D:
        hash_secret_raw(("password-%d-%d" % (t, n)).encode(), bytes([t]) * 16, time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, type=Type.ID)
        n += 1
    return n, time.perf_counter() - start
if __name__ == "__main__":
    with multiprocessing.Pool({procs}) as p:
        results = p.map(work, range({procs}))
    print(sum(n / s for n, s in results))
"#,
        secs = d.as_secs_f64(),
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("unexpected output: {e}"))
}

// ---------------------------------------------------------------------
// wrk.
// ---------------------------------------------------------------------

struct WrkRun {
    rps: f64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk(
    base: &str,
    path: &str,
    script: Option<&str>,
    conns: u32,
    d: Duration,
    latency: bool,
) -> WrkRun {
    let threads = conns.min(2);
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", d.as_secs().max(1)))
        .arg("--timeout")
        .arg("30s");
    if latency {
        cmd.arg("--latency");
    }
    let _file;
    if let Some(s) = script {
        let mut f = tempfile::Builder::new()
            .suffix(".lua")
            .tempfile()
            .expect("lua file");
        f.write_all(s.as_bytes()).expect("write lua");
        cmd.arg("-s").arg(f.path());
        _file = f;
    }
    cmd.arg(format!("{base}{path}"));
    let out = cmd.output().expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let errors = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let pct = |p: &str| field(p).map(|v| duration_ms(&v)).unwrap_or(f64::NAN);
    WrkRun {
        rps,
        errors,
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
    }
}

/// `1.23ms`, `850.00us`, `1.02s` → ms.
fn duration_ms(v: &str) -> f64 {
    let (num, factor) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("m") {
        (n, 60_000.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.trim().parse::<f64>().map_or(f64::NAN, |x| x * factor)
}

fn lua_string(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

fn lua_post(path: &str, body: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("wrk.headers[\"Authorization\"] = \"Bearer {t}\"\n"))
        .unwrap_or_default();
    format!(
        "wrk.method = \"POST\"\nwrk.path = {}\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n{auth}",
        lua_string(path),
        lua_string(body)
    )
}

fn lua_login(emails: &[String], password: &str) -> String {
    let list: Vec<String> = emails.iter().map(|e| lua_string(e)).collect();
    format!(
        r#"local emails = {{{list}}}
local i = 0
tid = 0
local n = 0
function setup(thread) thread:set("tid", n); n = n + 1 end
function request()
  i = i + 1
  local e = emails[((i * 7 + tid * 499) % #emails) + 1]
  return wrk.format("POST", "/api/v1/session/login", {{["Content-Type"] = "application/json"}}, '{{"email":"' .. e .. '","password":{pw}}}')
end
"#,
        list = list.join(","),
        pw = lua_string(password)
    )
}

fn lua_register() -> String {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!(
        r#"local i = 0
tid = 0
local n = 0
function setup(thread) thread:set("tid", n); n = n + 1 end
function request()
  i = i + 1
  local body = '{{"email":"reg-{run}-' .. tid .. '-' .. i .. '@example.com","password":"registration-password-2026","consents":["terms"],"profile":{{"first_name":"Reg","last_name":"User"}}}}'
  return wrk.format("POST", "/api/v1/user/register", {{["Content-Type"] = "application/json"}}, body)
end
"#
    )
}

// ---------------------------------------------------------------------
// Store figures.
// ---------------------------------------------------------------------

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                total += dir_size(&e.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// Raw bytes (keys + values) per user in the user plugin's tree, and the
/// number of keys.
fn raw_user_bytes(data: &Path) -> (f64, u64) {
    let db = sled::open(data.join("store")).expect("open the imported store");
    let tree = db.open_tree("plugin/user").expect("user tree");
    let mut bytes = 0u64;
    let mut keys = 0u64;
    let mut users = 0u64;
    for (k, v) in tree.iter().flatten() {
        bytes += (k.len() + v.len()) as u64;
        keys += 1;
        if k.starts_with(b"user/") {
            users += 1;
        }
    }
    (bytes as f64 / users.max(1) as f64, keys)
}

/// The position of a seeded user in the import: `i` of its address
/// `first.last.<i>@domain` (`syshost::dataset::generated_user`).
fn import_position(record: &[u8]) -> u64 {
    let record: Value = serde_json::from_slice(record).unwrap_or_default();
    record["email"]
        .as_str()
        .and_then(|a| a.rsplit_once('@'))
        .and_then(|(local, _)| local.rsplit('.').next())
        .and_then(|i| i.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Users/s sled reaches writing the user tree's keys and values again, in
/// the batches an import writes them: all keys of 1000 users per batch
/// (users in import order, so ids, addresses and times are as scattered
/// over the key space as in the import), flushing after each
/// batch: the store's own write rate without any of syshost's work. Also
/// the rate for the same keys written in sorted order (a best case no
/// import has, printed for comparison).
fn sled_batch_rate(data: &Path, users: u64, scratch: &Path) -> f64 {
    let db = sled::open(data.join("store")).expect("open the imported store");
    let tree = db.open_tree("plugin/user").expect("user tree");
    let entries: Vec<(sled::IVec, sled::IVec)> = tree.iter().flatten().collect();
    drop(tree);
    drop(db);
    // Each key's user: the last path segment, or the value of `email/`.
    let mut by_user: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    let mut order: Vec<(u64, Vec<u8>)> = Vec::new();
    for (i, (k, v)) in entries.iter().enumerate() {
        let id = if k.starts_with(b"email/") {
            v.to_vec()
        } else {
            k.rsplit(|b| *b == b'/').next().unwrap_or_default().to_vec()
        };
        if k.starts_with(b"user/") {
            order.push((import_position(v), id.clone()));
        }
        by_user.entry(id).or_default().push(i);
    }
    order.sort_unstable();
    let order: Vec<Vec<u8>> = order.into_iter().map(|(_, id)| id).collect();
    let grouped: Vec<Vec<usize>> = order
        .chunks(1000)
        .map(|chunk| {
            chunk
                .iter()
                .flat_map(|id| by_user.get(id).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    let per_batch = (entries.len() as u64 / users.max(1)).max(1) as usize * 1000;
    let sorted: Vec<Vec<usize>> = (0..entries.len())
        .collect::<Vec<_>>()
        .chunks(per_batch)
        .map(<[usize]>::to_vec)
        .collect();
    let run = |batches: &[Vec<usize>]| -> f64 {
        let _ = std::fs::remove_dir_all(scratch);
        let target = sled::open(scratch).expect("scratch sled");
        let out = target.open_tree("plugin/user").expect("tree");
        let started = Instant::now();
        for indexes in batches {
            let mut batch = sled::Batch::default();
            for &i in indexes {
                let (k, v) = &entries[i];
                batch.insert(k.clone(), v.clone());
            }
            out.apply_batch(batch).expect("batch");
            target.flush().expect("flush");
        }
        let rate = users as f64 / started.elapsed().as_secs_f64();
        drop(out);
        drop(target);
        let _ = std::fs::remove_dir_all(scratch);
        rate
    };
    let in_sorted_order = run(&sorted);
    let as_imported = run(&grouped);
    println!(
        "sled limit: {as_imported:.0} users/s in import batches, {in_sorted_order:.0} users/s with the same keys sorted"
    );
    as_imported
}

/// p50 and p99 (ms) of the same list query against an in-memory index:
/// records sorted by address, filtered by the search term, counted, paged.
fn in_memory_list(n: u64, search: &str) -> (f64, f64) {
    struct Row {
        email: String,
        first: String,
        last: String,
    }
    let mut rows: Vec<Row> = (0..n)
        .map(|i| {
            let u = syshost::dataset::generated_user(SEED, i, 1, "x");
            Row {
                email: u["email"].as_str().unwrap_or_default().to_lowercase(),
                first: u["profile"]["first_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase(),
                last: u["profile"]["last_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase(),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.email.cmp(&b.email));
    let mut times = Vec::new();
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let t = Instant::now();
        let mut total = 0usize;
        let mut page = Vec::with_capacity(50);
        for r in &rows {
            if r.email.contains(search) || r.first.contains(search) || r.last.contains(search) {
                if page.len() < 50 {
                    page.push(r.email.as_str());
                }
                total += 1;
            }
        }
        std::hint::black_box(&page);
        seen.insert(total);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    (times[times.len() / 2], times[times.len() * 99 / 100])
}
