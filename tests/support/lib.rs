//! Shared test support: find the plugin libraries cargo built, assemble
//! plugin directories from them, and run the `syshost` binary.
//!
//! `cargo test` builds the plugin and fixture crates (dev-dependencies of the
//! test packages) as cdylibs into `target/<profile>/deps`, next to the test
//! executables; `cargo build` puts them in `target/<profile>`. We look in both.

use std::path::{Path, PathBuf};

/// The seven systems User Management consists of.
pub const SYSTEMS: [&str; 7] = [
    "license",
    "role",
    "permission",
    "group",
    "settings",
    "session",
    "user",
];

/// Directories where cargo leaves cdylibs for this test run.
pub fn build_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if let Some(parent) = dir.parent() {
                dirs.push(parent.to_path_buf());
            }
        }
    }
    dirs
}

/// The path of the cdylib of crate `crate_name` (for example
/// `syshost-plugin-user`). Panics with a hint when it was not built.
pub fn library(crate_name: &str) -> PathBuf {
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    for dir in build_dirs() {
        let candidate = dir.join(&file);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "{file} was not built; run the tests with `cargo test --workspace` (searched {:?})",
        build_dirs()
    )
}

/// The library of system plugin `id`.
pub fn system_library(id: &str) -> PathBuf {
    library(&format!("syshost-plugin-{id}"))
}

/// The library of fixture `name`.
pub fn fixture_library(name: &str) -> PathBuf {
    library(&format!("syshost-fixture-{name}"))
}

/// A temporary plugin directory holding symlinks to the given libraries.
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    /// A directory with exactly these libraries.
    pub fn with(libraries: &[PathBuf]) -> PluginDir {
        let dir = tempfile::tempdir().expect("create temp plugin dir");
        for lib in libraries {
            let name = lib.file_name().expect("library has a file name");
            link_or_copy(lib, &dir.path().join(name));
        }
        PluginDir { dir }
    }

    /// A directory with the seven systems plus these extra libraries.
    pub fn systems_and(extra: &[PathBuf]) -> PluginDir {
        let mut libs: Vec<PathBuf> = SYSTEMS.iter().map(|id| system_library(id)).collect();
        libs.extend(extra.iter().cloned());
        PluginDir::with(&libs)
    }

    /// Adds a *copy* of a library under another file name: a distinct file
    /// claiming the same plugin id (for duplicate-id tests). Symlinks would
    /// not do: discovery counts a file reached through two paths once.
    pub fn add_copy_as(&self, library: &Path, file_name: &str) {
        std::fs::copy(library, self.dir.path().join(file_name)).expect("copy plugin library");
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn link_or_copy(from: &Path, to: &Path) {
    #[cfg(unix)]
    {
        if std::os::unix::fs::symlink(from, to).is_ok() {
            return;
        }
    }
    std::fs::copy(from, to).expect("copy plugin library");
}
