//! Every way a library can fail to load produces its own clear, one-line
//! error naming the file, and discovery collects them all.

#![allow(non_local_definitions)]

use std::path::PathBuf;

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RString};
use abi_stable::{declare_root_module_statics, package_version_strings, StableAbi};
use syshost::discovery::{discover, DiscoveryError};
use syshost::loader::{open_module, LoadError};
use syshost::Host;
use syshost_plugin_api::abi::{AbiError, HostBox, PluginBox};
use syshost_test_support::{fixture_library, system_library, PluginDir};

/// A root module deliberately different from the real one (an extra field
/// in the middle), standing in for a plugin built against another plugin-api.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = WrongModRef)))]
#[sabi(missing_field(panic))]
pub struct WrongMod {
    pub manifest: extern "C" fn() -> RResult<RString, AbiError>,
    pub priority: extern "C" fn() -> u32,
    #[sabi(last_prefix_field)]
    pub instantiate: extern "C" fn(HostBox) -> RResult<PluginBox, AbiError>,
}

impl RootModule for WrongModRef {
    declare_root_module_statics! {WrongModRef}
    const BASE_NAME: &'static str = "syshost_plugin";
    const NAME: &'static str = "syshost plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The real root-module shape, but claiming a future plugin-api version.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = FutureModRef)))]
#[sabi(missing_field(panic))]
pub struct FutureMod {
    pub manifest: extern "C" fn() -> RResult<RString, AbiError>,
    #[sabi(last_prefix_field)]
    pub instantiate: extern "C" fn(HostBox) -> RResult<PluginBox, AbiError>,
}

impl RootModule for FutureModRef {
    declare_root_module_statics! {FutureModRef}
    const BASE_NAME: &'static str = "syshost_plugin";
    const NAME: &'static str = "syshost plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("9.0.0");
}

/// A private copy, so these checks never touch the library other tests load.
fn copy_of(lib: PathBuf, dir: &tempfile::TempDir) -> PathBuf {
    let to = dir.path().join(lib.file_name().unwrap());
    std::fs::copy(&lib, &to).unwrap();
    to
}

fn one_line(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "error must be one line: {s:?}");
    s
}

#[test]
fn a_library_that_is_not_a_plugin_is_named_with_a_fix() {
    let lib = fixture_library("not-a-plugin");
    let err = open_module::<syshost_plugin_api::abi::PluginModRef>(&lib)
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::NotAPlugin { .. }), "{err:?}");
    let text = one_line(&err);
    assert!(
        text.contains("libsyshost_fixture_not_a_plugin.so"),
        "{text}"
    );
    assert!(
        text.contains("not a syshost plugin") && text.contains("export_plugin!"),
        "{text}"
    );
}

#[test]
fn an_abi_layout_mismatch_is_summarised_with_the_full_report_behind_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let lib = copy_of(system_library("role"), &dir);
    let err = open_module::<WrongModRef>(&lib).err().unwrap();
    let LoadError::AbiLayout { summary, full, .. } = &err else {
        panic!("expected AbiLayout, got {err:?}");
    };
    assert!(!summary.is_empty());
    assert!(
        full.lines().count() > 10,
        "abi_stable's report is long: {full}"
    );
    let text = one_line(&err);
    assert!(text.contains("libsyshost_plugin_role.so"), "{text}");
    assert!(
        text.contains("rebuild the plugin") && text.contains("--verbose"),
        "{text}"
    );
    assert!(err.verbose().lines().count() > 10);
}

#[test]
fn an_incompatible_plugin_api_version_names_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let lib = copy_of(system_library("group"), &dir);
    let err = open_module::<FutureModRef>(&lib).err().unwrap();
    assert!(matches!(err, LoadError::ApiVersion { .. }), "{err:?}");
    let text = one_line(&err);
    assert!(
        text.contains("built against syshost-plugin-api 0.1.0"),
        "{text}"
    );
    assert!(text.contains("9.0.0") && text.contains("rebuild"), "{text}");
}

#[test]
fn a_missing_file_is_an_open_error() {
    let err = open_module::<syshost_plugin_api::abi::PluginModRef>(std::path::Path::new(
        "/nonexistent/libnothing.so",
    ))
    .err()
    .unwrap();
    assert!(matches!(err, LoadError::Open { .. }), "{err:?}");
    assert!(one_line(&err).contains("/nonexistent/libnothing.so"));
}

#[test]
fn discovery_collects_every_failure_and_keeps_the_good_plugins() {
    let plugins = PluginDir::systems_and(&[
        fixture_library("not-a-plugin"),
        fixture_library("bad-manifest"),
    ]);
    plugins.add_copy_as(&system_library("user"), "libsyshost_user_copy.so");
    let missing = PathBuf::from("/nonexistent/plugins");
    let discovery = discover(&[plugins.path().to_path_buf(), missing]);
    let errors: Vec<String> = discovery.errors.iter().map(one_line).collect();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("/nonexistent/plugins") && e.contains("does not exist")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("not_a_plugin") && e.contains("not a syshost plugin")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("bad_manifest") && e.contains("'one.two' is not semver")),
        "{errors:#?}"
    );
    let duplicate = discovery
        .errors
        .iter()
        .find(|e| matches!(e, DiscoveryError::DuplicateId { .. }))
        .expect("duplicate id reported");
    let text = duplicate.to_string();
    assert!(
        text.contains("'user'")
            && text.contains("libsyshost_user_copy.so")
            && text.contains("libsyshost_plugin_user.so"),
        "{text}"
    );
    // The seven other systems are fine; the ambiguous one is not used at all.
    let ids: Vec<&str> = discovery.plugins.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "audit",
            "group",
            "license",
            "permission",
            "role",
            "session",
            "settings"
        ]
    );
}

#[test]
fn a_duplicate_id_makes_activation_fail_with_a_clear_reason() {
    let plugins = PluginDir::systems_and(&[]);
    plugins.add_copy_as(&system_library("license"), "libsyshost_license_again.so");
    let data = tempfile::tempdir().unwrap();
    let host = Host::builder()
        .data_dir(data.path())
        .plugin_dir(plugins.path())
        .build()
        .unwrap();
    let err = host
        .activate("user")
        .err()
        .expect("user cannot activate without license");
    let text = err.to_string();
    assert!(text.contains("license"), "{text}");
    assert!(!host.is_active("user"));
    // Unrelated systems still activate.
    host.activate("role").unwrap();
    host.shutdown();
}
