//! Containment of misbehaving plugins, against the real binary: a call
//! over the per-call time budget answers 503 `timeout` naming the budget
//! and is logged with plugin, operation and duration; a plugin with calls
//! stuck past the budget gets no more threads; oversized responses,
//! batches, scans and events are refused; the host stays up throughout.

mod common;

use std::time::{Duration, Instant};

use common::{call, client, Server};
use serde_json::json;
use syshost_test_support::{fixture_library, PluginDir};

fn start(cwd: &std::path::Path, plugins: &PluginDir, budget_ms: &str) -> Server {
    Server::start(
        cwd,
        plugins.path(),
        &[
            ("SYSHOST_ENABLE", "user,sleeper,bloater"),
            ("SYSHOST_LIMITS_CALL_BUDGET_MS", budget_ms),
            ("SYSHOST_LIMITS_MAX_RESPONSE_BYTES", "1048576"),
        ],
    )
}

/// Waits until the log has a line containing every needle.
fn wait_for_log(s: &Server, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = s
            .log
            .lock()
            .unwrap()
            .iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needles:?}:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_alive(s: &Server) {
    let c = client();
    assert_eq!(c.get(s.url("/healthz")).send().unwrap().status(), 200);
    let (status, v) = call(&c, s, "sleeper/ping", None, &json!({}));
    assert_eq!((status, v), (200, json!("pong")));
}

#[test]
fn a_call_over_its_time_budget_is_answered_reported_and_contained() {
    let plugins = PluginDir::systems_and(&[fixture_library("sleeper"), fixture_library("bloater")]);
    let cwd = tempfile::tempdir().unwrap();
    let s = start(cwd.path(), &plugins, "300");
    let c = client();

    for op in ["sleeper/sleep", "sleeper/spin"] {
        let started = Instant::now();
        let (status, v) = call(&c, &s, op, None, &json!({"ms": 1500}));
        assert_eq!(status, 503, "{v}");
        assert_eq!(v["error"]["code"], "timeout", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("300 ms") && message.contains("limits.call_budget_ms"),
            "{message}"
        );
        assert_eq!(v["error"]["details"]["budget_ms"], 300, "{v}");
        assert!(
            started.elapsed() < Duration::from_millis(1400),
            "answered only when the call ended"
        );
        assert_alive(&s);
    }
    // When the calls end, the host names them.
    let operation = wait_for_log(
        &s,
        &[
            "exceeded its time budget",
            "plugin=\"sleeper\"",
            "operation=\"sleep\"",
            "budget_ms=300",
        ],
    );
    assert!(operation.contains("WARN"), "{operation}");
    wait_for_log(&s, &["exceeded its time budget", "operation=\"spin\""]);

    // Calls stuck past the budget each hold a thread: after four, the
    // system gets no more until they end.
    let stuck: Vec<_> = (0..4)
        .map(|_| {
            let addr = s.addr.clone();
            std::thread::spawn(move || {
                common::call_addr(
                    &client(),
                    &addr,
                    "sleeper/sleep",
                    None,
                    &json!({"ms": 4000}),
                )
                .unwrap()
                .0
            })
        })
        .collect();
    for t in stuck {
        assert_eq!(t.join().unwrap(), 503);
    }
    let (status, v) = call(&c, &s, "sleeper/ping", None, &json!({}));
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "unavailable", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("past the time budget"),
        "{v}"
    );
    // Other systems are unaffected meanwhile.
    let (status, v) = call(&c, &s, "bloater/huge_response", None, &json!({"bytes": 10}));
    assert_eq!(status, 200, "{v}");
    // And the stuck system serves again once they end.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = call(&c, &s, "sleeper/ping", None, &json!({}));
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "sleeper never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.stop();
}

#[test]
fn oversized_payloads_are_refused_and_the_host_stays_up() {
    let plugins = PluginDir::systems_and(&[fixture_library("sleeper"), fixture_library("bloater")]);
    let cwd = tempfile::tempdir().unwrap();
    // Writing tens of MiB takes a while in a debug build.
    let s = start(cwd.path(), &plugins, "60000");
    let c = client();
    let mib = 1024 * 1024;

    // A response over limits.max_response_bytes never leaves the host: the
    // caller sees a plain internal error, the log names the limit.
    let (status, v) = call(
        &c,
        &s,
        "bloater/huge_response",
        None,
        &json!({"bytes": 2 * mib}),
    );
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"]["code"], "internal", "{v}");
    wait_for_log(
        &s,
        &[
            "exceeds limits.max_response_bytes",
            "plugin=\"bloater\"",
            "operation=\"huge_response\"",
        ],
    );
    let (status, v) = call(
        &c,
        &s,
        "bloater/huge_response",
        None,
        &json!({"bytes": mib / 2}),
    );
    assert_eq!(status, 200);
    assert_eq!(v.as_str().unwrap().len(), mib / 2);

    // A batch over 64 MiB is refused whole.
    let (status, v) = call(
        &c,
        &s,
        "bloater/huge_batch",
        None,
        &json!({"bytes": 8 * mib, "count": 9}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("batch carries"),
        "{v}"
    );

    // A scan that would hand back more than 64 MiB in one round trip fails
    // instead of being buffered.
    let (status, v) = call(
        &c,
        &s,
        "bloater/fill",
        None,
        &json!({"bytes": 15 * mib, "count": 5}),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(&c, &s, "bloater/scan_all", None, &json!({"bytes": 0}));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scan fewer pairs"),
        "{v}"
    );

    // Events over 1 MiB are refused; log lines are cut at 16 KiB.
    let (status, v) = call(
        &c,
        &s,
        "bloater/huge_event",
        None,
        &json!({"bytes": 2 * mib}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("event payload"),
        "{v}"
    );
    let (status, _) = call(&c, &s, "bloater/huge_log", None, &json!({"bytes": 200_000}));
    assert_eq!(status, 200);
    let line = wait_for_log(&s, &["plugin=\"bloater\"", "xxxxxxxx"]);
    assert!(line.len() < 17 * 1024, "log line of {} bytes", line.len());

    assert_alive(&s);
    s.stop();
}
