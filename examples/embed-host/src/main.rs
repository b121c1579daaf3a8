//! Embeds the syshost host in an ordinary Rust program.
//!
//! Run it after building the plugins:
//!
//! ```text
//! cargo build && cargo run -p syshost-example-embed-host
//! ```
//!
//! It looks for plugin libraries in `$SYSHOST_PLUGIN_DIRS` (colon-separated)
//! or next to its own executable (`target/debug`, where `cargo build` puts
//! them), keeps its data in a fresh temporary directory, activates `user`
//! (which activates all eight systems in dependency order), and calls an
//! operation.

use std::path::PathBuf;
use std::process::ExitCode;

use syshost::Host;
use syshost_plugin_api::NoInput;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let plugin_dirs: Vec<PathBuf> = match std::env::var("SYSHOST_PLUGIN_DIRS") {
        Ok(dirs) => dirs.split(':').map(PathBuf::from).collect(),
        Err(_) => syshost::config::default_plugin_dirs(),
    };
    let data_dir =
        std::env::temp_dir().join(format!("syshost-embed-example-{}", std::process::id()));

    // 1. Build the host: opens the store and discovers the plugin libraries.
    let host = Host::builder()
        .data_dir(&data_dir)
        .plugin_dirs(plugin_dirs)
        .build()?;

    // 2. Activate `user`; everything it requires is activated first.
    let user = host.activate("user")?;
    for system in host.systems() {
        println!(
            "{:>2}  {:<10} {:<7} {:<8} {}",
            system
                .order
                .map(|o| o.to_string())
                .unwrap_or_else(|| "-".into()),
            system.id,
            system.version,
            format!("{:?}", system.state).to_lowercase(),
            system.reason
        );
    }

    // 3. Call an operation with typed input and output.
    let pong: serde_json::Value = user.call("ping", &NoInput {})?;
    println!("user.ping -> {pong}");

    // 4. Activating an already active system returns the same handle.
    let again = host.activate("user")?;
    assert_eq!(again.id(), user.id());

    // 5. Shut down in reverse activation order; the store is flushed.
    let errors = host.shutdown();
    let _ = std::fs::remove_dir_all(&data_dir);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} system(s) failed to shut down", errors.len()).into())
    }
}
