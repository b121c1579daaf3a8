//! The host's mail service against a real SMTP server process: delivery,
//! a server that is down (nothing lost, retried), restart durability, and
//! the `.eml` outbox used when no server is configured.

use std::time::Duration;

use serde_json::{json, Value};
use syshost::mail::{MailSettings, MailTransportConfig};
use syshost::Host;
use syshost_plugin_api::codes;
use syshost_test_support::{fixture_library, free_port, PluginDir, SmtpSink};

fn settings(url: String) -> MailSettings {
    let mut s = MailSettings::outbox(std::env::temp_dir());
    s.transport = MailTransportConfig::Smtp(url);
    s.from = "Accounts <accounts@example.test>".into();
    s.retry_base = Duration::from_millis(100);
    s.retry_max = Duration::from_millis(400);
    s
}

fn host(plugins: &PluginDir, data: &std::path::Path, mail: Option<MailSettings>) -> Host {
    let mut builder = Host::builder().data_dir(data).plugin_dir(plugins.path());
    if let Some(mail) = mail {
        builder = builder.mail(mail);
    }
    let host = builder.build().unwrap();
    host.activate("intruder").unwrap();
    host
}

fn send(host: &Host, to: &str, subject: &str) -> Result<Value, syshost::PluginError> {
    host.system("intruder").unwrap().call(
        "send_mail",
        &json!({ "to": [to], "subject": subject, "text": "Your code is 314159.", "kind": "test" }),
    )
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mail_is_delivered_to_a_real_smtp_server() {
    let sink = SmtpSink::start();
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path(), Some(settings(sink.url())));
    send(&host, "alice@example.test", "Verify your account").unwrap();
    let messages = sink.wait_for(1, Duration::from_secs(20));
    let raw = &messages[0];
    assert!(raw.contains("Subject: Verify your account"), "{raw}");
    assert!(raw.contains("alice@example.test"), "{raw}");
    assert!(raw.contains("accounts@example.test"), "{raw}");
    assert!(raw.contains("Your code is 314159."), "{raw}");
    wait_until("the queue to drain", || host.mail_pending() == 0);
    assert_eq!(host.mail_stats().unwrap().delivered, 1);
    host.shutdown();
}

#[test]
fn a_server_that_is_down_loses_nothing_and_mail_goes_out_when_it_returns() {
    let port = free_port();
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    let host = host(
        &plugins,
        data.path(),
        Some(settings(format!("smtp://127.0.0.1:{port}"))),
    );
    send(&host, "bob@example.test", "Password reset").unwrap();
    wait_until("a failed attempt", || {
        host.mail_stats().unwrap().failed_attempts >= 2
    });
    assert_eq!(host.mail_pending(), 1);
    let sink = SmtpSink::start_on(port);
    let messages = sink.wait_for(1, Duration::from_secs(20));
    assert!(messages[0].contains("Subject: Password reset"));
    wait_until("the queue to drain", || host.mail_pending() == 0);
    host.shutdown();
}

#[test]
fn queued_mail_survives_a_restart() {
    let port = free_port();
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    {
        let host = host(
            &plugins,
            data.path(),
            Some(settings(format!("smtp://127.0.0.1:{port}"))),
        );
        send(&host, "carol@example.test", "Account created").unwrap();
        send(&host, "dave@example.test", "Account created").unwrap();
        assert_eq!(host.mail_pending(), 2);
        host.shutdown();
    }
    let sink = SmtpSink::start_on(port);
    let host = host(&plugins, data.path(), Some(settings(sink.url())));
    let messages = sink.wait_for(2, Duration::from_secs(20));
    assert!(messages.iter().any(|m| m.contains("carol@example.test")));
    assert!(messages.iter().any(|m| m.contains("dave@example.test")));
    wait_until("the queue to drain", || host.mail_pending() == 0);
    host.shutdown();
}

#[test]
fn without_smtp_mail_is_written_to_the_outbox_as_eml() {
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path(), None);
    send(&host, "erin@example.test", "Welcome").unwrap();
    let outbox = data.path().join("outbox");
    let mut found = Vec::new();
    wait_until("an .eml file", || {
        found = std::fs::read_dir(&outbox)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        !found.is_empty()
    });
    let text = std::fs::read_to_string(&found[0]).unwrap();
    assert!(
        text.contains("Subject: Welcome") && text.contains("erin@example.test"),
        "{text}"
    );
    host.shutdown();
}

#[test]
fn invalid_mail_is_refused_to_the_plugin_and_nothing_is_queued() {
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path(), None);
    let err = send(&host, "not-an-address", "Hi").unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert!(err.message.contains("not-an-address"), "{err}");
    let err = host
        .system("intruder")
        .unwrap()
        .call::<_, Value>(
            "send_mail",
            &json!({ "to": ["a@example.test"], "subject": "x\r\nBcc: evil@example.test", "text": "" }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert_eq!(host.mail_pending(), 0);
    host.shutdown();
}
