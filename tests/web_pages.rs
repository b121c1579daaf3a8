//! The web frontend's page table follows activations: the HTTP layer keeps
//! it per set of active systems instead of rebuilding it on every `/ui`
//! request, and a system activated while the server runs is served at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use syshost::http::{bind, router, serve, HttpOptions};
use syshost::Host;
use syshost_test_support::PluginDir;

/// `GET path` over a fresh connection: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn pages_follow_activations() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = Host::builder()
        .data_dir(data.path())
        .plugin_dir(plugins.path())
        .build()
        .unwrap();
    let report = host.activate_all(&["settings".into()]);
    assert!(report.is_ok(), "{report:?}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (listener, addr) = runtime.block_on(bind("127.0.0.1:0")).unwrap();
    let app = router(
        host.clone(),
        HttpOptions::new(vec!["settings".into()], &format!("http://{addr}")),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(serve(listener, app, async {
        let _ = stopped.await;
    }));

    // Only `settings` is active: there is no login page, twice (the second
    // answer comes from the cached table).
    for _ in 0..2 {
        let (status, body) = get(addr, "/ui/login");
        assert_eq!(status, 404, "{body}");
    }

    // Activating `session` (and the `user` system it requires) adds its
    // pages to the very next request.
    let report = host.activate_all(&["session".into()]);
    assert!(report.is_ok(), "{report:?}");
    let (status, body) = get(addr, "/ui/login");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("/ui/do/session/login"), "{body}");
    // The account page of `user` is now declared too: an anonymous visitor
    // is sent to the login page instead of a 404.
    let (status, body) = get(addr, "/ui/account/profile");
    assert_eq!(status, 303, "{body}");

    let _ = stop.send(());
    runtime.block_on(server).unwrap().unwrap();
    host.shutdown();
}
