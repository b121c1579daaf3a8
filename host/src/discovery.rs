//! Discovery: scan the plugin directories, load every library, validate its
//! manifest, and collect *every* failure instead of stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use syshost_plugin_api::abi::PluginModRef;
use syshost_plugin_api::{is_valid_ident, is_valid_permission_id, Manifest};
use thiserror::Error;

use crate::loader::{load_library, LoadError, LoadedLibrary};
use crate::resolver::{Candidate, Dep};

/// A problem found during discovery. One line each, naming the file.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// The library could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A configured plugin directory does not exist or cannot be read.
    #[error("plugin directory {dir}: {reason}; fix plugin_dirs / SYSHOST_PLUGIN_DIRS")]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The manifest is loadable but invalid.
    #[error("{path}: invalid manifest for plugin '{id}': {reason}")]
    BadManifest {
        /// The library file.
        path: PathBuf,
        /// The id the manifest claims.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two libraries claim the same plugin id; neither is used.
    #[error("plugin id '{id}' is provided by more than one library: {}; remove all but one", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    DuplicateId {
        /// The contested id.
        id: String,
        /// Every library claiming it.
        paths: Vec<PathBuf>,
    },
}

impl DiscoveryError {
    /// The full diagnostic (see [`LoadError::verbose`]).
    pub fn verbose(&self) -> String {
        match self {
            DiscoveryError::Load(e) => e.verbose(),
            other => other.to_string(),
        }
    }
}

/// A plugin whose library loaded and whose manifest is valid.
#[derive(Clone)]
pub struct DiscoveredPlugin {
    /// The library file.
    pub path: PathBuf,
    /// The checked root module.
    pub module: PluginModRef,
    /// The validated manifest.
    pub manifest: Manifest,
    /// The parsed version.
    pub version: Version,
    /// Parsed hard dependencies.
    pub requires: Vec<Dep>,
    /// Parsed soft dependencies.
    pub wants: Vec<Dep>,
}

impl DiscoveredPlugin {
    /// The resolver's view of this plugin.
    pub fn candidate(&self) -> Candidate {
        Candidate {
            id: self.manifest.id.clone(),
            version: self.version.clone(),
            requires: self.requires.clone(),
            wants: self.wants.clone(),
        }
    }
}

/// The result of scanning the plugin directories.
#[derive(Default, Clone)]
pub struct Discovery {
    /// Valid plugins by id.
    pub plugins: BTreeMap<String, DiscoveredPlugin>,
    /// Every problem found, in path order.
    pub errors: Vec<DiscoveryError>,
}

impl Discovery {
    /// The resolver's candidates, sorted by id.
    pub fn candidates(&self) -> Vec<Candidate> {
        self.plugins
            .values()
            .map(DiscoveredPlugin::candidate)
            .collect()
    }
}

/// Scans `dirs` for plugin libraries (`*.so` on Linux) and loads each one.
pub fn discover(dirs: &[PathBuf]) -> Discovery {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for dir in dirs {
        match library_files(dir) {
            Ok(found) => {
                for f in found {
                    // The same file reached through two directories counts once.
                    let canonical = f.canonicalize().unwrap_or_else(|_| f.clone());
                    if seen.insert(canonical) {
                        files.push(f);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let mut discovery = discover_files(&files);
    errors.append(&mut discovery.errors);
    discovery.errors = errors;
    discovery
}

/// Loads exactly these library files.
pub fn discover_files(files: &[PathBuf]) -> Discovery {
    let mut errors = Vec::new();
    let mut by_id: BTreeMap<String, Vec<DiscoveredPlugin>> = BTreeMap::new();
    for path in files {
        match load_library(path)
            .map_err(DiscoveryError::from)
            .and_then(validate)
        {
            Ok(plugin) => by_id
                .entry(plugin.manifest.id.clone())
                .or_default()
                .push(plugin),
            Err(e) => errors.push(e),
        }
    }
    let mut plugins = BTreeMap::new();
    for (id, mut found) in by_id {
        if found.len() == 1 {
            if let Some(plugin) = found.pop() {
                plugins.insert(id, plugin);
            }
        } else {
            errors.push(DiscoveryError::DuplicateId {
                id,
                paths: found.into_iter().map(|p| p.path).collect(),
            });
        }
    }
    Discovery { plugins, errors }
}

fn library_files(dir: &Path) -> Result<Vec<PathBuf>, DiscoveryError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DiscoveryError::Directory {
        dir: dir.to_path_buf(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_string()
        } else {
            format!("cannot be read: {e}")
        },
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()) == Some(std::env::consts::DLL_EXTENSION)
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Checks a loaded library's manifest (see [`validate_manifest`]).
fn validate(lib: LoadedLibrary) -> Result<DiscoveredPlugin, DiscoveryError> {
    let checked = validate_manifest(&lib.path, &lib.manifest)?;
    Ok(DiscoveredPlugin {
        path: lib.path,
        module: lib.module,
        manifest: lib.manifest,
        version: checked.version,
        requires: checked.requires,
        wants: checked.wants,
    })
}

/// What [`validate_manifest`] parsed out of a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedManifest {
    /// The parsed version.
    pub version: Version,
    /// Parsed hard dependencies.
    pub requires: Vec<Dep>,
    /// Parsed soft dependencies.
    pub wants: Vec<Dep>,
}

/// Checks a manifest's fields (id, operation and permission patterns,
/// uniqueness, subscriptions, subject provider) and parses its version and
/// dependency ranges. `path` only names the library in the error.
pub fn validate_manifest(path: &Path, m: &Manifest) -> Result<CheckedManifest, DiscoveryError> {
    let bad = |reason: String| DiscoveryError::BadManifest {
        path: path.to_path_buf(),
        id: m.id.clone(),
        reason,
    };
    if !is_valid_ident(&m.id) {
        return Err(bad(format!("id '{}' must match ^[a-z][a-z0-9_]*$", m.id)));
    }
    let version = Version::parse(&m.version)
        .map_err(|e| bad(format!("version '{}' is not semver: {e}", m.version)))?;
    let parse_deps = |deps: &[syshost_plugin_api::Dependency], kind: &str| {
        deps.iter()
            .map(|d| {
                if !is_valid_ident(&d.id) {
                    return Err(bad(format!("{kind} '{}' is not a valid plugin id", d.id)));
                }
                if d.id == m.id {
                    return Err(bad(format!("{kind} itself")));
                }
                let req = VersionReq::parse(&d.version).map_err(|e| {
                    bad(format!(
                        "{kind} {} '{}' is not a semver range: {e}",
                        d.id, d.version
                    ))
                })?;
                Ok(Dep {
                    id: d.id.clone(),
                    req,
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let requires = parse_deps(&m.requires, "requires")?;
    let wants = parse_deps(&m.wants, "wants")?;
    let mut seen = BTreeSet::new();
    for p in &m.permissions {
        if !is_valid_permission_id(&p.id) {
            return Err(bad(format!(
                "permission id '{}' must match ^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)+$",
                p.id
            )));
        }
        if !seen.insert(p.id.as_str()) {
            return Err(bad(format!("permission '{}' is declared twice", p.id)));
        }
    }
    let mut ops = BTreeSet::new();
    for op in &m.operations {
        if !is_valid_ident(&op.name) {
            return Err(bad(format!(
                "operation name '{}' must match ^[a-z][a-z0-9_]*$",
                op.name
            )));
        }
        if !ops.insert(op.name.as_str()) {
            return Err(bad(format!("operation '{}' is declared twice", op.name)));
        }
        if let Some(p) = op.access.permission_id() {
            if !is_valid_permission_id(p) {
                return Err(bad(format!(
                    "operation '{}' requires permission '{p}', which is not a valid permission id",
                    op.name
                )));
            }
        }
    }
    for pattern in &m.subscribes {
        let core = pattern.strip_suffix(".*").unwrap_or(pattern);
        let ok = pattern == "*"
            || core.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
        if !ok {
            return Err(bad(format!(
                "subscription '{pattern}' must be '*', a topic like 'role.deleted', or a prefix like 'role.*'"
            )));
        }
    }
    check_pages(m).map_err(bad)?;
    if let Some(provider) = &m.subject_provider {
        match m.operation(&provider.operation) {
            Some(op) if op.access == syshost_plugin_api::Access::System => {}
            Some(_) => {
                return Err(bad(format!(
                    "subject provider operation '{}' must be declared with Access::System",
                    provider.operation
                )))
            }
            None => {
                return Err(bad(format!(
                    "subject provider operation '{}' is not declared",
                    provider.operation
                )))
            }
        }
    }
    Ok(CheckedManifest {
        version,
        requires,
        wants,
    })
}

/// Checks a manifest's web pages: well-formed unique paths, each naming a
/// declared operation that is not system-only, and valid card permissions.
fn check_pages(m: &syshost_plugin_api::Manifest) -> Result<(), String> {
    let mut paths = BTreeSet::new();
    for page in &m.pages {
        if !syshost_plugin_api::PageDecl::is_valid_path(&page.path) {
            return Err(format!(
                "page path '{}' must be segments of [a-z0-9_-] separated by '/'",
                page.path
            ));
        }
        if !paths.insert(page.path.as_str()) {
            return Err(format!("page '{}' is declared twice", page.path));
        }
        match m.operation(&page.operation) {
            Some(op) if op.access != syshost_plugin_api::Access::System => {}
            Some(_) => {
                return Err(format!(
                    "page '{}' names operation '{}', which only the system may call",
                    page.path, page.operation
                ))
            }
            None => {
                return Err(format!(
                    "page '{}' names operation '{}', which is not declared",
                    page.path, page.operation
                ))
            }
        }
        if let Some(p) = page.card.as_ref().and_then(|c| c.permission.as_deref()) {
            if !is_valid_permission_id(p) {
                return Err(format!(
                    "the card of page '{}' names '{p}', which is not a valid permission id",
                    page.path
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use syshost_plugin_api::{Access, Manifest, OperationDecl, PageDecl};

    fn manifest(access: Access) -> Manifest {
        let mut m = Manifest::new("p", "0.1.0");
        m.operations.push(OperationDecl {
            name: "page".into(),
            access,
            doc: String::new(),
            mutates: false,
            throttle: None,
            inline: false,
            request_schema: None,
            response_schema: None,
        });
        m
    }

    #[test]
    fn pages_must_name_callable_operations_and_valid_paths() {
        let ok = manifest(Access::Public).page(PageDecl::new("admin/p", "P", "page").card(
            "P",
            "",
            Some("p.read"),
        ));
        assert!(check_pages(&ok).is_ok());
        let cases = [
            (
                manifest(Access::Public).page(PageDecl::new("/bad", "P", "page")),
                "page path '/bad'",
            ),
            (
                manifest(Access::Public)
                    .page(PageDecl::new("a", "P", "page"))
                    .page(PageDecl::new("a", "Q", "page")),
                "declared twice",
            ),
            (
                manifest(Access::Public).page(PageDecl::new("a", "P", "missing")),
                "not declared",
            ),
            (
                manifest(Access::System).page(PageDecl::new("a", "P", "page")),
                "only the system",
            ),
            (
                manifest(Access::Public).page(PageDecl::new("a", "P", "page").card(
                    "P",
                    "",
                    Some("Bad"),
                )),
                "not a valid permission id",
            ),
        ];
        for (m, expected) in cases {
            let err = check_pages(&m).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }
}
