//! The browser-test harness: the real `syshost run` binary with a data
//! directory and a real SMTP sink ([`WebServer`], from [`crate::server`]), headless Chromium through
//! chromedriver ([`Browser`], a fantoccini client), a login helper and
//! screenshots saved as PNG under `target/screenshots/`.
//!
//! Browser tests live in `host/tests/` because only there cargo provides the
//! binary's path (`env!("CARGO_BIN_EXE_syshost")`). They need the Debian
//! packages `chromium` and `chromium-driver` (`.ci/run` installs them);
//! `$CHROMEDRIVER` and `$CHROMIUM` override the default paths.
//!
//! ```no_run
//! # async fn t() {
//! use syshost_test_support::browser::{Browser, WebServer};
//! use syshost_test_support::{PluginDir, SmtpSink};
//! let smtp = SmtpSink::start();
//! let plugins = PluginDir::systems_and(&[]);
//! // In host/tests: env!("CARGO_BIN_EXE_syshost").
//! let bin = std::path::Path::new("target/debug/syshost");
//! let server = WebServer::start(bin, &plugins, &smtp, &[]);
//! let browser = Browser::start().await;
//! browser.login(&server, WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD).await;
//! browser.screenshot("admin-center").await;
//! browser.close().await;
//! # }
//! ```

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use fantoccini::{elements::Element, Client, Locator};

use crate::free_port;
pub use crate::server::WebServer;

/// Headless Chromium driven through its own chromedriver process; the
/// driver is killed on drop (call [`Browser::close`] to end the session
/// cleanly first).
pub struct Browser {
    /// The WebDriver client (for anything the helpers do not cover).
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium
    /// session (1280×900 window).
    pub async fn start() -> Browser {
        Browser::start_sized(1280, 900).await
    }

    /// Like [`Browser::start`] with a window of `width`×`height` (for
    /// example 390×844 for a phone).
    pub async fn start_sized(width: u32, height: u32) -> Browser {
        Browser::start_with(width, height, false).await
    }

    /// Like [`Browser::start_sized`]; `dark` makes the page see
    /// `prefers-color-scheme: dark`.
    pub async fn start_with(width: u32, height: u32, dark: bool) -> Browser {
        let driver_bin =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_string());
        let chromium =
            std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
        let port = free_port();
        let mut driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {driver_bin}: {e}; install chromium-driver (see .ci/run)")
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("chromedriver exited with {status}");
            }
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("browser profile");
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if dark {
            args.push("--force-dark-mode".into());
            args.push("--blink-settings=preferredColorScheme=0".into());
        }
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": args,
            }
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("capabilities are an object"),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session ({chromium}): {e}"));
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .to_string()
    }

    /// The current path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits (up to 10 s) for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => panic!("no element '{css}' on {}: {e}", self.path_now().await),
        }
    }

    async fn path_now(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Whether an element matching `css` exists right now.
    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// Clears the input matching `css` and types `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks the first link or button whose text contains `text`.
    pub async fn click_text(&self, text: &str) {
        let xpath = format!(
            "//*[self::a or self::button or self::summary][contains(normalize-space(.), {})]",
            xpath_literal(text)
        );
        let found = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath(&xpath))
            .await;
        let el = match found {
            Ok(el) => el,
            Err(e) => panic!(
                "no link or button '{text}' on {}: {e}",
                self.path_now().await
            ),
        };
        el.click()
            .await
            .unwrap_or_else(|e| panic!("click '{text}': {e}"));
    }

    /// Submits the form with DOM id `form-<id>` (as the renderer names
    /// forms) by clicking its submit button.
    pub async fn submit(&self, form_id: &str) {
        self.click(&format!("#form-{form_id} button[type=submit]"))
            .await;
    }

    /// The visible text of the page's `<main>`.
    pub async fn main_text(&self) -> String {
        self.find("main").await.text().await.unwrap_or_default()
    }

    /// Waits (up to 10 s) until the page's `<main>` contains `text` (use it
    /// after a submission instead of looking for any flash message: the
    /// previous page may still be showing one).
    pub async fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let main = match self.client.find(Locator::Css("main")).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if main.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected '{text}' on {}, page says:\n{main}",
                self.path_now().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 10 s) until the path (with query) starts with `prefix`.
    pub async fn wait_for_path(&self, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let path = self.path().await;
            if path.starts_with(prefix) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected to arrive at {prefix}, still at {path}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Logs in through the login page and waits until it is left.
    pub async fn login(&self, server: &WebServer, email: &str, password: &str) {
        self.goto(&server.url("/ui/login")).await;
        self.fill("#form-login input[name=email]", email).await;
        self.fill("#form-login input[name=password]", password)
            .await;
        self.submit("login").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.path().await.starts_with("/ui/login") {
            assert!(
                Instant::now() < deadline,
                "login of {email} did not leave the login page: {}",
                self.main_text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot of the window as `target/screenshots/<name>.png`
    /// and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the browser session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `target/screenshots` of this workspace.
pub fn screenshot_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .join("target")
        .join("screenshots")
}

/// An XPath string literal for `text` (handles both quote kinds).
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}
