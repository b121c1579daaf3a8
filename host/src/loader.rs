//! Opening one plugin library: dlopen, header and ABI checks, manifest.
//!
//! Libraries are loaded with `lib_header_from_path` + `init_root_module`,
//! never `RootModule::load_from_*`: those cache one module per root-module
//! *type* and would hand back the first plugin for every later path.
//! Loaded libraries are never unloaded (abi_stable leaks them on purpose), so
//! replacing a plugin means restarting the host.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule, RootModuleError};
use syshost_plugin_api::abi::{PluginModRef, API_VERSION};
use syshost_plugin_api::{Manifest, PluginError};
use thiserror::Error;

/// Why a library could not be loaded as a plugin. Every message names the
/// file and says what to do.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// dlopen failed (missing file, not a shared library, missing symbols).
    #[error("{path}: cannot open library: {reason}")]
    Open {
        /// The library file.
        path: PathBuf,
        /// The loader's explanation.
        reason: String,
    },
    /// The library exports no syshost root module.
    #[error(
        "{path}: not a syshost plugin (no abi_stable root module); build it with `export_plugin!` or remove it from the plugin directory"
    )]
    NotAPlugin {
        /// The library file.
        path: PathBuf,
    },
    /// Built with an incompatible abi_stable release.
    #[error("{path}: built with an incompatible abi_stable release ({found}); rebuild it against syshost-plugin-api {host_api}")]
    AbiToolchain {
        /// The library file.
        path: PathBuf,
        /// What the library's header says.
        found: String,
        /// The host's plugin-api version.
        host_api: String,
    },
    /// Built against an incompatible plugin-api version.
    #[error("{path}: built against syshost-plugin-api {plugin_api}, but this host uses {host_api}; rebuild the plugin against {host_api}")]
    ApiVersion {
        /// The library file.
        path: PathBuf,
        /// The plugin-api version the library was built against.
        plugin_api: String,
        /// The host's plugin-api version.
        host_api: String,
    },
    /// The types crossing the boundary have a different layout.
    #[error("{path}: ABI layout differs from this host's syshost-plugin-api {host_api}: {summary}; rebuild the plugin (run with --verbose for abi_stable's full report)")]
    AbiLayout {
        /// The library file.
        path: PathBuf,
        /// The first few `Error:` lines of abi_stable's report.
        summary: String,
        /// abi_stable's full report.
        full: String,
        /// The host's plugin-api version.
        host_api: String,
    },
    /// The root-module constructor failed or panicked.
    #[error("{path}: the library's root module failed to initialise: {reason}")]
    Init {
        /// The library file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `manifest()` failed, panicked, or returned invalid JSON.
    #[error("{path}: unreadable manifest: {reason}; fix the plugin's Manifest")]
    Manifest {
        /// The library file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl LoadError {
    /// The full diagnostic (abi_stable's complete layout report for
    /// [`LoadError::AbiLayout`]; the one-line message otherwise).
    pub fn verbose(&self) -> String {
        match self {
            LoadError::AbiLayout { full, .. } => format!("{self}\n{full}"),
            _ => self.to_string(),
        }
    }
}

/// A library that passed every load-time check.
#[derive(Clone)]
pub struct LoadedLibrary {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The checked root module.
    pub module: PluginModRef,
    /// The manifest it reported (not yet validated; see `discovery`).
    pub manifest: Manifest,
}

/// Loads the plugin library at `path` and reads its manifest.
pub fn load_library(path: &Path) -> Result<LoadedLibrary, LoadError> {
    let module = open_module::<PluginModRef>(path)?;
    let manifest = read_manifest(path, module)?;
    Ok(LoadedLibrary {
        path: path.to_path_buf(),
        module,
        manifest,
    })
}

/// Opens `path` and checks it against root-module type `M`, mapping every
/// abi_stable failure to a [`LoadError`]. Generic so tests can check a real
/// library against a deliberately different root-module type.
pub fn open_module<M: RootModule>(path: &Path) -> Result<M, LoadError> {
    let header = lib_header_from_path(path).map_err(|e| map_error(path, e))?;
    header
        .init_root_module::<M>()
        .map_err(|e| map_error(path, e))
}

fn read_manifest(path: &Path, module: PluginModRef) -> Result<Manifest, LoadError> {
    let manifest_fn = module.manifest();
    let json = manifest_fn()
        .into_result()
        .map_err(|e| LoadError::Manifest {
            path: path.to_path_buf(),
            reason: PluginError::from(e).to_string(),
        })?;
    parse_manifest(path, json.as_str())
}

/// Decodes the manifest JSON a library at `path` reported (its fields are
/// checked later by [`crate::discovery::validate_manifest`]).
pub fn parse_manifest(path: &Path, json: &str) -> Result<Manifest, LoadError> {
    serde_json::from_str(json).map_err(|e| LoadError::Manifest {
        path: path.to_path_buf(),
        reason: format!("invalid manifest JSON: {e}"),
    })
}

fn map_error(path: &Path, error: LibraryError) -> LoadError {
    let path_buf = path.to_path_buf();
    match error {
        LibraryError::OpenError { err, .. } => LoadError::Open {
            path: path_buf,
            reason: err.to_string(),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin { path: path_buf },
        LibraryError::InvalidAbiHeader(header) => LoadError::AbiToolchain {
            path: path_buf,
            found: format!("abi_stable ABI {}.{}", header.abi_major, header.abi_minor),
            host_api: API_VERSION.to_string(),
        },
        LibraryError::InvalidCAbi { .. } => LoadError::AbiToolchain {
            path: path_buf,
            found: "a different C ABI".to_string(),
            host_api: API_VERSION.to_string(),
        },
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::ApiVersion {
            path: path_buf,
            plugin_api: actual_version.to_string(),
            host_api: expected_version.to_string(),
        },
        LibraryError::ParseVersionError(e) => LoadError::ApiVersion {
            path: path_buf,
            plugin_api: format!("an unparsable version ({e})"),
            host_api: API_VERSION.to_string(),
        },
        LibraryError::AbiInstability(report) => {
            let full = report.to_string();
            LoadError::AbiLayout {
                path: path_buf,
                summary: summarize_layout_report(&full),
                full,
                host_api: API_VERSION.to_string(),
            }
        }
        LibraryError::RootModule { err, .. } => LoadError::Init {
            path: path_buf,
            reason: match err {
                RootModuleError::Returned(e) => e.to_string(),
                RootModuleError::Unwound => "it panicked".to_string(),
            },
        },
        LibraryError::Many(errors) => {
            let mut errors = errors.into_iter();
            match errors.next() {
                Some(first) => map_error(path, first),
                None => LoadError::Open {
                    path: path_buf,
                    reason: "unknown abi_stable error".to_string(),
                },
            }
        }
    }
}

/// The first three `Error:` lines of an abi_stable layout report, joined
/// into one line (the report itself runs to hundreds of lines).
fn summarize_layout_report(full: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut text = full.lines().map(str::trim).peekable();
    while let Some(line) = text.next() {
        if let Some(rest) = line.strip_prefix("Error:") {
            let mut entry = rest.trim().to_string();
            // abi_stable prints the details on the following lines.
            while let Some(next) = text.peek() {
                if next.is_empty() || next.starts_with("Error:") || next.starts_with("---") {
                    break;
                }
                if next.starts_with("Expected:") || next.starts_with("Found:") {
                    entry.push_str(", ");
                    entry.push_str(next);
                }
                text.next();
            }
            lines.push(entry);
            if lines.len() == 3 {
                break;
            }
        }
    }
    if lines.is_empty() {
        full.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("layout mismatch")
            .to_string()
    } else {
        lines.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::summarize_layout_report;

    #[test]
    fn summary_takes_error_lines() {
        let report = "Compared <this>\n stuff\nError:too many fields\n Expected: 3\n Found: 2\n\nError:mismatched type\n";
        assert_eq!(
            summarize_layout_report(report),
            "too many fields, Expected: 3, Found: 2; mismatched type"
        );
    }

    #[test]
    fn summary_falls_back_to_first_line() {
        assert_eq!(
            summarize_layout_report("\n  odd report\nmore"),
            "odd report"
        );
    }
}
