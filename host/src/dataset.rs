//! Bulk data: importing accounts from JSON Lines (`syshost import FILE`) and
//! the one dataset generator every benchmark and test shares
//! (`syshost dev seed --users N`).
//!
//! Both go through the `user` system's `import` operation, which stores up to
//! 1000 accounts per call in one atomic batch (so a durability policy that
//! flushes after every write flushes once per batch, not once per user).
//!
//! The generator is deterministic: the same `seed` and count give the same
//! users (names, addresses, roles, groups, consents, creation times), so
//! benchmark runs are comparable. Every generated user has the same password
//! (hashed once, argon2id with the user system's parameters), which makes
//! logins possible in load tests without hashing a million passwords.

use std::io::BufRead;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use syshost_plugin_api::PluginError;

use crate::runtime::{Host, SystemHandle};

/// Users per `user.import` call (the operation's maximum).
pub const IMPORT_BATCH: usize = 1000;

/// The password every seeded user has unless another is given.
pub const DEFAULT_SEED_PASSWORD: &str = "seeded-password-2026";

/// Roles the generator assigns: `(id, name, permissions)`.
pub const SEED_ROLES: &[(&str, &str, &[&str])] = &[
    ("viewer", "Viewer", &[]),
    ("editor", "Editor", &["group.read"]),
    ("support", "Support", &["user.read"]),
    ("auditor", "Auditor", &["user.read", "role.read"]),
];

/// Groups the generator assigns: `(id, name)`.
pub const SEED_GROUPS: &[(&str, &str)] = &[
    ("sales", "Sales"),
    ("engineering", "Engineering"),
    ("support-team", "Support team"),
    ("marketing", "Marketing"),
    ("finance", "Finance"),
];

/// Consent options the generator makes sure exist in the `user` settings:
/// `(id, title, required)`.
pub const SEED_CONSENTS: &[(&str, &str, bool)] = &[
    ("terms", "Terms of use", true),
    ("newsletter", "Newsletter", false),
];

const FIRST_NAMES: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karla",
    "Leon", "Mia", "Noah", "Olivia", "Paul", "Quentin", "Rosa", "Samuel", "Tina", "Ulrich", "Vera",
    "Walter", "Xenia", "Yusuf", "Zoe", "Amélie", "Björn", "Chloé", "Dario", "Elif", "Fatima",
    "Giulia", "Hannes", "Inés", "Jakob", "Kenji", "Lena", "Mateo", "Nora",
];
const LAST_NAMES: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Dubois",
    "Lefebvre",
    "Rossi",
    "Russo",
    "Kowalski",
    "Nowak",
    "Novak",
    "Horvat",
    "Jensen",
    "Nielsen",
    "Hansen",
    "Andersson",
    "Johansson",
    "Virtanen",
    "Korhonen",
    "Yılmaz",
    "Kaya",
    "Tanaka",
    "Suzuki",
    "Silva",
];
const COMPANIES: &[&str] = &[
    "Acme GmbH",
    "Globex Ltd",
    "Initech",
    "Umbrella AG",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Soylent Corp",
    "Tyrell Corp",
    "Cyberdyne Systems",
];
const CITIES: &[&str] = &[
    "Berlin",
    "Hamburg",
    "München",
    "Köln",
    "Wien",
    "Zürich",
    "Paris",
    "Lyon",
    "Milano",
    "Madrid",
    "Lisboa",
    "Amsterdam",
    "København",
    "Stockholm",
    "Helsinki",
    "Warszawa",
];
const POSITIONS: &[&str] = &[
    "Engineer",
    "Manager",
    "Analyst",
    "Consultant",
    "Designer",
    "Accountant",
    "Sales rep",
    "Support agent",
];
const DOMAINS: &[&str] = &["example.com", "example.org", "example.net", "mail.example"];

/// SplitMix64: a tiny deterministic generator (no dependency, good enough
/// for test data).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Lowercase ASCII form of a name for the local part of an address.
fn ascii_slug(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'ä' | 'á' | 'à' | 'Ä' => 'a',
            'é' | 'è' | 'É' => 'e',
            'í' | 'ı' | 'İ' => 'i',
            'ö' | 'ó' | 'ø' | 'Ö' => 'o',
            'ü' | 'ú' | 'Ü' => 'u',
            'ç' => 'c',
            c => c.to_ascii_lowercase(),
        })
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// The `i`-th generated user of the dataset `seed`, as an item of the
/// `user.import` request (one line of an import file). `now_ms` anchors the
/// creation times (spread over the three years before it) and consent
/// times; `password_hash` is stored for every user.
pub fn generated_user(seed: u64, i: u64, now_ms: i64, password_hash: &str) -> Value {
    let mut rng = Rng(seed ^ i.wrapping_mul(0xA076_1D64_78BD_642F));
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(LAST_NAMES);
    let domain = rng.pick(DOMAINS);
    // The index makes every address unique within a dataset.
    let email = format!("{}.{}.{i}@{domain}", ascii_slug(first), ascii_slug(last));
    let three_years_ms: u64 = 3 * 365 * 24 * 3600 * 1000;
    let created_at = now_ms - 1 - (rng.next() % three_years_ms) as i64;
    let mut roles = vec![SEED_ROLES[0].0];
    if rng.chance(20) {
        roles.push(SEED_ROLES[1 + rng.below(SEED_ROLES.len() - 1)].0);
    }
    let mut groups = vec![SEED_GROUPS[rng.below(SEED_GROUPS.len())].0];
    if rng.chance(15) {
        groups.push(SEED_GROUPS[rng.below(SEED_GROUPS.len())].0);
    }
    groups.sort_unstable();
    groups.dedup();
    let consent_at = created_at;
    let mut consents = json!({
        "terms": [{"action": "accepted", "at": consent_at, "version": "1"}]
    });
    if rng.chance(40) {
        let mut history = vec![json!({"action": "accepted", "at": consent_at, "version": "1"})];
        if rng.chance(25) {
            let revoked_at = consent_at + (now_ms - consent_at) / 2;
            history.push(json!({"action": "revoked", "at": revoked_at, "version": "1"}));
        }
        consents["newsletter"] = Value::Array(history);
    }
    let status = if rng.chance(3) {
        json!({"state": "disabled"})
    } else {
        json!({"state": "enabled"})
    };
    json!({
        "email": email,
        "password_hash": password_hash,
        "verified": !rng.chance(10),
        "status": status,
        "profile": {
            "first_name": first,
            "last_name": last,
            "company": rng.pick(COMPANIES),
            "position": rng.pick(POSITIONS),
            "city": rng.pick(CITIES),
            "phone": format!("+49 30 {:07}", rng.next() % 10_000_000),
        },
        "roles": roles,
        "groups": groups,
        "consents": consents,
        "created_at": created_at,
    })
}

/// The argon2id PHC string of `password` with the user system's parameters
/// (m = 19456 KiB, t = 2, p = 1, 32-byte output) and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(19_456, 2, 1, Some(32)).map_err(|e| e.to_string())?;
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    hasher
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the seed password: {e}"))
}

/// Creates the roles, groups and consent options [`generated_user`] refers
/// to when they are missing (existing ones are left as they are).
pub fn prepare_references(host: &Host) -> Result<(), String> {
    let system = |id: &str| {
        host.system(id)
            .ok_or_else(|| format!("the '{id}' system is not active"))
    };
    let role = system("role")?;
    for (id, name, permissions) in SEED_ROLES {
        let created: Result<Value, PluginError> = role.call(
            "create",
            &json!({"id": id, "name": name, "permissions": permissions}),
        );
        tolerate_conflict(created, "role", id)?;
    }
    let group = system("group")?;
    for (id, name) in SEED_GROUPS {
        let created: Result<Value, PluginError> =
            group.call("create", &json!({"id": id, "name": name}));
        tolerate_conflict(created, "group", id)?;
    }
    let settings = system("settings")?;
    let current: Value = settings
        .call("get", &json!({"section": "user"}))
        .map_err(|e| format!("cannot read the user settings: {e}"))?;
    let mut document = current["document"].clone();
    let mut options = document["consent_options"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut changed = false;
    for (id, title, required) in SEED_CONSENTS {
        if !options.iter().any(|o| o["id"] == *id) {
            options.push(json!({
                "id": id, "title": title, "version": "1", "required": required,
                "text": format!("{title} (generated by syshost dev seed)."),
            }));
            changed = true;
        }
    }
    if changed {
        document["consent_options"] = Value::Array(options);
        let _: Value = settings
            .call("put", &json!({"section": "user", "document": document}))
            .map_err(|e| format!("cannot add the consent options: {e}"))?;
    }
    Ok(())
}

fn tolerate_conflict(
    result: Result<Value, PluginError>,
    what: &str,
    id: &str,
) -> Result<(), String> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code == syshost_plugin_api::codes::CONFLICT => Ok(()),
        Err(e) => Err(format!("cannot create {what} '{id}': {e}")),
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImportReport {
    /// Accounts created.
    pub imported: u64,
    /// `user.import` calls made (batches committed).
    pub batches: u64,
    /// Wall time of the import calls.
    pub elapsed: Duration,
}

impl ImportReport {
    /// Accounts per second.
    pub fn rate(&self) -> f64 {
        self.imported as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// An import that stopped: the batches before the failing one are stored,
/// nothing of the failing one is.
#[derive(Debug, Clone)]
pub struct ImportFailure {
    /// What was stored before the failure.
    pub done: ImportReport,
    /// The message naming the failing line (when known) and the reason.
    pub message: String,
}

impl std::fmt::Display for ImportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; {} user(s) in {} earlier batch(es) were imported, nothing of this batch",
            self.message, self.done.imported, self.done.batches
        )
    }
}

/// The `user.import` request, borrowing its items.
#[derive(serde::Serialize)]
struct ImportBody<'a> {
    users: &'a [Value],
}

/// Sends `items` (with the line number each came from, for messages) to
/// `user.import` in batches of `batch` (1..=1000).
pub fn import_items<I>(
    user: &SystemHandle,
    items: I,
    batch: usize,
) -> Result<ImportReport, ImportFailure>
where
    I: IntoIterator<Item = Result<(usize, Value), String>>,
{
    let batch = batch.clamp(1, IMPORT_BATCH);
    let mut report = ImportReport {
        imported: 0,
        batches: 0,
        elapsed: Duration::ZERO,
    };
    let mut lines = Vec::with_capacity(batch);
    let mut users = Vec::with_capacity(batch);
    let mut items = items.into_iter().peekable();
    loop {
        lines.clear();
        users.clear();
        while users.len() < batch {
            match items.next() {
                Some(Ok((line, user))) => {
                    lines.push(line);
                    users.push(user);
                }
                Some(Err(message)) => {
                    return Err(ImportFailure {
                        done: report,
                        message,
                    })
                }
                None => break,
            }
        }
        if users.is_empty() {
            return Ok(report);
        }
        let started = Instant::now();
        // Borrowed, not `json!` (which would deep-copy every item first).
        let result: Result<Value, PluginError> = user.call("import", &ImportBody { users: &users });
        report.elapsed += started.elapsed();
        match result {
            Ok(answer) => {
                report.imported += answer["imported"].as_u64().unwrap_or(0);
                report.batches += 1;
            }
            Err(e) => {
                let index = e
                    .details
                    .as_ref()
                    .and_then(|d| d.get("index"))
                    .and_then(Value::as_u64)
                    .and_then(|i| usize::try_from(i).ok());
                let message = match index.and_then(|i| lines.get(i)) {
                    Some(line) => format!("line {line}: {e}"),
                    None => format!(
                        "lines {}-{}: {e}",
                        lines.first().copied().unwrap_or(0),
                        lines.last().copied().unwrap_or(0)
                    ),
                };
                return Err(ImportFailure {
                    done: report,
                    message,
                });
            }
        }
        if items.peek().is_none() {
            return Ok(report);
        }
    }
}

/// Reads a JSON Lines import file (one `user.import` item per line; blank
/// lines and lines starting with `#` are skipped) lazily, numbering lines
/// from 1. A line that is not a JSON object is an error naming the line.
pub fn read_lines(reader: impl BufRead) -> impl Iterator<Item = Result<(usize, Value), String>> {
    reader.lines().enumerate().filter_map(|(i, line)| {
        let n = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => return Some(Err(format!("line {n}: cannot read: {e}"))),
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return None;
        }
        Some(match serde_json::from_str::<Value>(trimmed) {
            Ok(v) if v.is_object() => Ok((n, v)),
            Ok(_) => Err(format!("line {n}: expected a JSON object (one user)")),
            Err(e) => Err(format!("line {n}: not valid JSON: {e}")),
        })
    })
}

/// Seeds `users` generated users (dataset `seed`, all with `password`)
/// through `user.import`, after [`prepare_references`].
pub fn seed(host: &Host, users: u64, seed: u64, password: &str) -> Result<ImportReport, String> {
    if host.system("user").is_none() {
        return Err("the 'user' system is not active".into());
    }
    prepare_references(host)?;
    let phc = hash_password(password)?;
    let now = crate::runtime::system_now_ms();
    // A second thread generates the users and encodes each batch's request
    // while the import calls run, at most two batches ahead (a bounded
    // channel), so generating, encoding and storing overlap on two cores,
    // the importing thread does no JSON work of its own, and memory stays
    // flat at any size.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, u64, String)>(2);
    let generator = std::thread::Builder::new()
        .name("syshost-seed".into())
        .spawn(move || {
            let mut first = 0;
            while first < users {
                let last = (first + IMPORT_BATCH as u64).min(users);
                let mut body = Vec::with_capacity(IMPORT_BATCH * 1024);
                body.extend_from_slice(b"{\"users\":[");
                for i in first..last {
                    if i > first {
                        body.push(b',');
                    }
                    // Writing a `Value` into a Vec cannot fail.
                    let _ = serde_json::to_writer(&mut body, &generated_user(seed, i, now, &phc));
                }
                body.extend_from_slice(b"]}");
                let body = String::from_utf8(body).unwrap_or_default();
                if tx.send((first, last, body)).is_err() {
                    // The import stopped early (an error); stop too.
                    return;
                }
                first = last;
            }
        })
        .map_err(|e| format!("cannot start the generator thread: {e}"))?;
    let mut report = ImportReport {
        imported: 0,
        batches: 0,
        elapsed: Duration::ZERO,
    };
    let mut failure = None;
    for (first, last, body) in rx {
        let started = Instant::now();
        let result = host.call_raw("user", "import", &body, &crate::CallContext::system());
        report.elapsed += started.elapsed();
        let answer = result.and_then(|text| {
            serde_json::from_str::<Value>(&text)
                .map_err(|e| PluginError::internal(format!("user.import answered: {e}")))
        });
        match answer {
            Ok(answer) => {
                report.imported += answer["imported"].as_u64().unwrap_or(0);
                report.batches += 1;
            }
            Err(e) => {
                // Generated user `i` is "line" `i + 1`, as in an import file.
                let message = match e
                    .details
                    .as_ref()
                    .and_then(|d| d.get("index"))
                    .and_then(Value::as_u64)
                {
                    Some(index) => format!("line {}: {e}", first + index + 1),
                    None => format!("lines {}-{last}: {e}", first + 1),
                };
                let failed = ImportFailure {
                    done: report,
                    message,
                };
                failure = Some(failed.to_string());
                break;
            }
        }
    }
    generator
        .join()
        .map_err(|_| "the generator thread panicked".to_string())?;
    match failure {
        Some(message) => Err(message),
        None => Ok(report),
    }
}
