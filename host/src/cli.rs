//! The `syshost` command line: a thin layer over the host library.
//!
//! Exit codes: 0 success, 1 runtime or resolution error, 2 usage error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::discovery::{discover, Discovery};
use crate::resolver::{self, Outcome};
use crate::runtime::{ActivationReport, Host, SystemState, SystemStatus};

/// syshost: loads system plugins, resolves their dependencies, and serves them.
#[derive(Debug, Parser)]
#[command(name = "syshost", version, about, long_about = None)]
pub struct Cli {
    /// Config file (default: $SYSHOST_CONFIG, else ./syshost.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show full diagnostics (for example abi_stable's complete layout report).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Activate the enabled systems and serve until SIGINT/SIGTERM.
    Run,
    /// List every discovered system with its state (activates the enabled set).
    Systems {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the dependency graph of every discovered system.
    Graph {
        /// Print Graphviz DOT instead of text.
        #[arg(long)]
        dot: bool,
    },
    /// Discover and resolve without activating; exit 1 listing every problem.
    Check,
    /// Write a consistent snapshot of the whole store (every namespace) to
    /// FILE. Works on a stopped host's data directory, and asks a running
    /// host through its admin socket.
    Backup {
        /// Where to write the backup (replaced atomically if it exists).
        file: PathBuf,
    },
    /// Fill an empty (or missing) data directory from a backup FILE.
    /// Refuses a data directory that holds anything.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Administration commands that work on a stopped host's data directory.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Import accounts from a JSON Lines file (one `user.import` item per
    /// line) into a stopped host's data directory, atomically per batch.
    Import {
        /// The JSON Lines file (`-` reads standard input).
        file: PathBuf,
        /// Users per atomic batch (1-1000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
        batch_size: u16,
    },
    /// Development helpers that work on a stopped host's data directory.
    Dev {
        /// What to do.
        #[command(subcommand)]
        command: DevCommand,
    },
}

/// `syshost dev …` subcommands.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Create N realistic users (names, addresses, roles, groups, consents)
    /// through the import path; deterministic for a given --seed.
    Seed {
        /// How many users to create.
        #[arg(long)]
        users: u64,
        /// Dataset seed: the same seed and count give the same users.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The password every seeded user gets.
        #[arg(long, default_value = crate::dataset::DEFAULT_SEED_PASSWORD)]
        password: String,
    },
}

/// `syshost admin …` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator account (holds the built-in `admin` role).
    /// Reads the password from standard input (first line). Refuses while a
    /// running host holds the data directory.
    Create {
        /// The administrator's login email.
        #[arg(long)]
        email: String,
    },
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let config =
        Config::load(cli.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
    let log_filter = match &cli.command {
        Command::Run => config.log.clone(),
        _ if cli.verbose => config.log.clone(),
        _ => "warn".to_string(),
    };
    init_logging(&log_filter);
    match cli.command {
        Command::Run => run_server(&config),
        Command::Systems { json } => systems(&config, json, cli.verbose),
        Command::Graph { dot } => graph(&config, dot, cli.verbose),
        Command::Check => check(&config, cli.verbose),
        Command::Admin {
            command: AdminCommand::Create { email },
        } => admin_create(&config, &email),
        Command::Backup { file } => backup(&config, &file),
        Command::Restore { file } => restore(&config, &file),
        Command::Import { file, batch_size } => import(&config, &file, usize::from(batch_size)),
        Command::Dev {
            command:
                DevCommand::Seed {
                    users,
                    seed,
                    password,
                },
        } => dev_seed(&config, users, seed, &password),
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(crate::config::tidy_log_filter(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn print_discovery_errors(discovery: &Discovery, verbose: bool) {
    for e in &discovery.errors {
        if verbose {
            eprintln!("error: {}", e.verbose());
        } else {
            eprintln!("error: {e}");
        }
    }
}

fn site(config: &Config, bound: Option<std::net::SocketAddr>) -> crate::SiteInfo {
    let public_url = match (&config.public_url, bound) {
        (Some(url), _) => url.clone(),
        (None, Some(addr)) => format!("http://{addr}"),
        (None, None) => format!("http://{}", config.http.addr),
    };
    crate::SiteInfo {
        product_name: config.product_name.clone(),
        public_url,
    }
}

fn host_builder(config: &Config, bound: Option<std::net::SocketAddr>) -> crate::HostBuilder {
    Host::builder()
        .data_dir(&config.data_dir)
        .plugin_dirs(config.effective_plugin_dirs())
        .mail(config.mail_settings())
        .site(site(config, bound))
        .store_options(config.store_options())
        .sync_writes(config.store.sync_writes)
        .call_budget(std::time::Duration::from_millis(
            config.limits.call_budget_ms,
        ))
        .max_response_bytes(usize::try_from(config.limits.max_response_bytes).unwrap_or(usize::MAX))
}

fn build_host(config: &Config) -> Result<Host, String> {
    host_builder(config, None)
        .build()
        .map_err(|e| e.to_string())
}

/// The one readable startup block: what was activated and why.
pub fn activation_summary(host: &Host, report: &ActivationReport) -> String {
    let mut out = String::new();
    let rows = host.systems();
    let active: Vec<&SystemStatus> = rows
        .iter()
        .filter(|s| s.state == SystemState::Active)
        .collect();
    out.push_str(&format!("activated {} system(s):\n", active.len()));
    for s in &active {
        out.push_str(&format!(
            "  {:>2}. {:<12} {:<8} {}\n",
            s.order.map(|o| o + 1).unwrap_or(0),
            s.id,
            s.version,
            s.reason
        ));
    }
    for s in rows
        .iter()
        .filter(|s| matches!(s.state, SystemState::Failed | SystemState::Blocked))
    {
        let state = if s.state == SystemState::Failed {
            "FAILED"
        } else {
            "BLOCKED"
        };
        out.push_str(&format!("  {state} {} {}: {}\n", s.id, s.version, s.reason));
    }
    for p in &report.problems {
        if !rows.iter().any(|s| p.contains(&format!("'{}'", s.id))) {
            out.push_str(&format!("  problem: {p}\n"));
        }
    }
    for w in &report.warnings {
        out.push_str(&format!("  note: {w}\n"));
    }
    out.trim_end().to_string()
}

fn run_server(config: &Config) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("syshost")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    // Bind first: the bound address is the default public URL (port 0 too).
    let addr = config.http.addr.clone();
    let (listener, local) = runtime
        .block_on(crate::http::bind(&addr))
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let host = host_builder(config, Some(local))
        .bootstrap_admin(crate::BootstrapAdmin {
            email: config.admin.email.clone(),
            password: config.admin.password.clone(),
        })
        .build()
        .map_err(|e| e.to_string())?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %config.data_dir.display(),
        plugin_dirs = %config.effective_plugin_dirs().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
        enable = %config.enable.join(","),
        "starting syshost"
    );
    let activation_host = host.clone();
    let enabled = config.enable.clone();
    let report = runtime
        .block_on(async move {
            tokio::task::spawn_blocking(move || activation_host.activate_all(&enabled)).await
        })
        .map_err(|e| format!("activation thread failed: {e}"))?;
    let summary = activation_summary(&host, &report);
    if report.is_ok() {
        tracing::info!("{summary}");
    } else {
        tracing::error!("{summary}");
    }
    let admin_socket = match crate::admin_socket::AdminSocket::start(host.clone()) {
        Ok(socket) => Some(socket),
        Err(e) => {
            tracing::warn!("{e}; `syshost backup` cannot reach this host");
            None
        }
    };
    let public_url = site(config, Some(local)).public_url;
    let router = crate::http::router(
        host.clone(),
        crate::http::HttpOptions::from_config(config, &public_url),
    );
    let served = runtime.block_on(async move {
        tracing::info!("listening on http://{local}");
        crate::http::serve(listener, router, shutdown_signal())
            .await
            .map_err(|e| format!("HTTP server failed: {e}"))
    });
    tracing::info!("shutting down");
    drop(admin_socket);
    let errors = host.shutdown();
    drop(runtime);
    served?;
    if errors.is_empty() {
        tracing::info!("stopped cleanly");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!(
            "{} system(s) failed to shut down cleanly",
            errors.len()
        ))
    }
}

fn admin_create(config: &Config, email: &str) -> Result<ExitCode, String> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("no password on standard input; pipe it in, e.g. `syshost admin create --email a@example.com < password.txt`".into());
    }
    let host = build_host(config)?;
    let user = host.activate("user").map_err(|e| e.to_string())?;
    let created: Result<serde_json::Value, _> = user.call(
        "create",
        &serde_json::json!({
            "email": email,
            "password": password,
            "verified": true,
            "roles": ["admin"],
        }),
    );
    host.shutdown();
    let created = created.map_err(|e| format!("cannot create the administrator: {e}"))?;
    println!(
        "created administrator {} (id {})",
        created["email"].as_str().unwrap_or(email),
        created["id"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

/// `syshost backup FILE`: offline from the store, or through the running
/// host's admin socket when it holds the store lock.
fn backup(config: &Config, file: &std::path::Path) -> Result<ExitCode, String> {
    use crate::store::{SledStore, Store, StoreError};
    let data_dir = &config.data_dir;
    if !crate::store::store_path(data_dir).is_dir() {
        return Err(format!(
            "there is no syshost store in {} (check data_dir)",
            data_dir.display()
        ));
    }
    let socket = crate::admin_socket::socket_path(data_dir);
    let (bytes, how) = if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        (
            crate::admin_socket::request_backup(data_dir)?,
            "from the running host",
        )
    } else {
        match SledStore::open_with(data_dir, config.store_options()) {
            Ok(store) => {
                let trees = store.export().map_err(|e| e.to_string())?;
                (
                    crate::backup::encode(&trees, crate::runtime::system_now_ms())
                        .map_err(|e| e.to_string())?,
                    "from the stopped data directory",
                )
            }
            // Started meanwhile, or its socket was not up yet.
            Err(StoreError::Locked { .. }) => (
                crate::admin_socket::request_backup(data_dir)?,
                "from the running host",
            ),
            Err(e) => return Err(e.to_string()),
        }
    };
    let backup =
        crate::backup::decode(&bytes).map_err(|e| format!("the backup is unusable: {e}"))?;
    write_private_file(file, &bytes)?;
    println!(
        "backup written to {} {how}: {} trees, {} pairs, {} bytes",
        file.display(),
        backup.trees.len(),
        backup.pair_count(),
        bytes.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `file` owner-only (0600), via a temporary file and a
/// rename so a reader never sees half a file.
fn write_private_file(file: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = file
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", file.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = file.with_file_name(tmp_name);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, file));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", file.display())
    })
}

/// `syshost restore FILE`: checks the whole file, then fills an empty data
/// directory with it.
fn restore(config: &Config, file: &std::path::Path) -> Result<ExitCode, String> {
    use crate::store::{SledStore, Store};
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let backup = crate::backup::decode(&bytes)
        .map_err(|e| format!("{} cannot be restored: {e}", file.display()))?;
    let data_dir = &config.data_dir;
    match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "data directory {} is not empty; restore only fills an empty or missing data directory (move the old one away first)",
                    data_dir.display()
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", data_dir.display())),
    }
    let store_dir = crate::store::store_path(data_dir);
    let filled = SledStore::open_with(data_dir, config.store_options())
        .map_err(|e| e.to_string())
        .and_then(|store| store.import(&backup.trees).map_err(|e| e.to_string()));
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&store_dir);
        return Err(format!("restore failed, nothing kept: {e}"));
    }
    println!(
        "restored {} trees, {} pairs into {}",
        backup.trees.len(),
        backup.pair_count(),
        data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn import(config: &Config, file: &std::path::Path, batch_size: usize) -> Result<ExitCode, String> {
    let reader: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let host = build_host(config)?;
    let user = match host.activate("user") {
        Ok(user) => user,
        Err(e) => {
            host.shutdown();
            return Err(e.to_string());
        }
    };
    let result =
        crate::dataset::import_items(&user, crate::dataset::read_lines(reader), batch_size);
    host.shutdown();
    drop((user, host));
    let stored = match &result {
        Ok(report) => report.imported,
        Err(failure) => failure.done.imported,
    };
    let folded = fold_log(config, stored);
    let report = result.map_err(|e| e.to_string())?;
    folded?;
    println!(
        "imported {} user(s) in {} batch(es), {:.0} users/s",
        report.imported,
        report.batches,
        report.rate()
    );
    Ok(ExitCode::SUCCESS)
}

/// After a bulk write (`imported` accounts), folds sled's log into its
/// recovery snapshot so the next start does not replay it (see
/// [`crate::store::fold_recovery_log`]).
fn fold_log(config: &Config, imported: u64) -> Result<(), String> {
    if imported == 0 {
        return Ok(());
    }
    crate::store::fold_recovery_log(&config.data_dir, config.store_options())
        .map_err(|e| format!("the import is stored, but reopening the store failed: {e}"))
}

fn dev_seed(config: &Config, users: u64, seed: u64, password: &str) -> Result<ExitCode, String> {
    let host = build_host(config)?;
    if let Err(e) = host.activate("user") {
        host.shutdown();
        return Err(e.to_string());
    }
    let result = crate::dataset::seed(&host, users, seed, password);
    host.shutdown();
    drop(host);
    let folded = fold_log(config, result.as_ref().map_or(0, |r| r.imported));
    let report = result?;
    folded?;
    println!(
        "seeded {} user(s) (dataset {seed}) in {:.1} s, {:.0} users/s; every user's password is the one given with --password (default '{}')",
        report.imported,
        report.elapsed.as_secs_f64(),
        report.rate(),
        crate::dataset::DEFAULT_SEED_PASSWORD
    );
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn systems(config: &Config, json: bool, verbose: bool) -> Result<ExitCode, String> {
    let host = build_host(config)?;
    print_discovery_errors(host.discovery(), verbose);
    let report = host.activate_all(&config.enable);
    let rows = host.systems();
    host.shutdown();
    let mut stdout = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        writeln!(stdout, "{text}").map_err(|e| e.to_string())?;
    } else {
        writeln!(
            stdout,
            "{:<5} {:<12} {:<9} {:<10} {:<24} PATH",
            "ORDER", "ID", "VERSION", "STATE", "REASON"
        )
        .map_err(|e| e.to_string())?;
        for s in &rows {
            let state = serde_json::to_value(&s.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            writeln!(
                stdout,
                "{:<5} {:<12} {:<9} {:<10} {:<24} {}",
                s.order.map(|o| o.to_string()).unwrap_or_else(|| "-".into()),
                s.id,
                s.version,
                state,
                s.reason,
                s.path.display()
            )
            .map_err(|e| e.to_string())?;
        }
    }
    for p in &report.problems {
        eprintln!("error: {p}");
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn graph(config: &Config, dot: bool, verbose: bool) -> Result<ExitCode, String> {
    let discovery = discover(&config.effective_plugin_dirs());
    print_discovery_errors(&discovery, verbose);
    let candidates = discovery.candidates();
    if dot {
        print!("{}", resolver::to_dot(&candidates));
    } else {
        for c in &candidates {
            println!("{} {}", c.id, c.version);
            for e in resolver::edges(&candidates)
                .iter()
                .filter(|e| e.from == c.id)
            {
                let kind = match e.kind {
                    resolver::EdgeKind::Requires => "requires",
                    resolver::EdgeKind::Wants => "wants   ",
                };
                println!("  {kind} {} {}", e.to, e.req);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(config: &Config, verbose: bool) -> Result<ExitCode, String> {
    let discovery = discover(&config.effective_plugin_dirs());
    print_discovery_errors(&discovery, verbose);
    let plan = resolver::resolve(&discovery.candidates(), &config.enable);
    for p in &plan.problems {
        eprintln!("error: {p}");
    }
    for w in &plan.warnings {
        eprintln!("note: {}: {}", w.plugin, w.message);
    }
    let mut declared: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    let mut duplicates = 0;
    for id in &plan.order {
        let Some(plugin) = discovery.plugins.get(id) else {
            continue;
        };
        for p in &plugin.manifest.permissions {
            if let Some(first) = declared.insert(p.id.as_str(), id.as_str()) {
                eprintln!(
                    "error: permission '{}' is declared by both '{first}' and '{id}'; permission ids must be unique",
                    p.id
                );
                duplicates += 1;
            }
        }
    }
    let problems = discovery.errors.len() + plan.problems.len() + duplicates;
    if problems == 0 {
        println!(
            "ok: {} system(s) discovered; enabling {} activates {} in this order: {}",
            discovery.plugins.len(),
            config.enable.join(", "),
            plan.order.len(),
            plan.order.join(" → ")
        );
        Ok(ExitCode::SUCCESS)
    } else {
        let blocked: Vec<&String> = plan
            .outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Blocked { .. }))
            .map(|(id, _)| id)
            .collect();
        if !blocked.is_empty() {
            eprintln!(
                "blocked by the errors above: {}",
                blocked
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        eprintln!("{problems} problem(s) found");
        Ok(ExitCode::from(1))
    }
}
