//! Target `email`: the `user` system's address normalisation.
//!
//! Checks: never panics; a refusal is `invalid_input` for field `email`; an
//! accepted address has exactly one `@`, fits the documented limits, is
//! accepted again unchanged (normalising is idempotent), and its
//! uniqueness key does not depend on how the input spells its domain
//! (ASCII letter case, compatibility characters such as the ligature `ﬁ`).

use syshost_plugin_api::codes;
use syshost_plugin_user::email::{domain, domain_allowed, key, normalize};
use unicode_normalization::UnicodeNormalization;

/// Tokens worth splicing into addresses.
pub const DICTIONARY: &[&str] = &[
    "@",
    ".",
    "..",
    "-",
    "+",
    "localhost",
    "example.com",
    "EXAMPLE.COM",
    "xn--bcher-kva.ch",
    "bücher.ch",
    "İ",
    "ß",
    "ẞ",
    "K",
    "Å",
    "Å",
    "e\u{301}",
    "\u{200b}",
    "\u{feff}",
    "\u{202e}",
    "\u{0}",
    "\t",
    " ",
    "\"",
    "(",
    ")",
    "[127.0.0.1]",
    "123",
    "a",
    "Ann.Lee",
    "🦀",
    "ǅ",
    "ﬁ",
    "Ω",
    "Ω",
    "ΣΑΣ",
    "σ",
    "ς",
];

/// Seed inputs.
pub fn seeds() -> Vec<Vec<u8>> {
    [
        "ann@example.com",
        "  Ann.Lee+tag@EXAMPLE.com ",
        "root@localhost",
        "jörg@bücher.ch",
        "a@b",
        "a@@b.c",
        "a..b@c.d",
        "x@123.456",
        "İ@İ.com",
        "K@Å.example",
        "a@-b.c",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Runs the target; returns the outcome class.
pub fn fuzz(data: &[u8]) -> String {
    let Ok(input) = std::str::from_utf8(data) else {
        return "not_utf8".to_string();
    };
    match normalize(input) {
        Ok(n) => {
            assert_eq!(n.matches('@').count(), 1, "{n:?}");
            assert!(n.len() <= 254, "{n:?} is {} bytes", n.len());
            let (local, dom) = n.split_once('@').expect("one @");
            assert!(!local.is_empty() && local.len() <= 64, "{n:?}");
            assert_eq!(domain(&n), dom);
            assert_eq!(
                normalize(&n).as_ref().map_err(|e| e.message.clone()),
                Ok(&n),
                "normalising {input:?} twice changed it"
            );
            // Spellings of the same domain give the same key: another
            // ASCII letter case, and the compatibility form (what IDNA
            // resolves, e.g. the ligature `ﬁ` is `fi`).
            if let Some((in_local, in_domain)) = input.trim().rsplit_once('@') {
                let variants = [
                    in_domain.to_ascii_uppercase(),
                    in_domain.nfkc().collect::<String>(),
                ];
                for variant in variants {
                    let other = format!("{in_local}@{variant}");
                    if let Ok(again) = normalize(&other) {
                        assert_eq!(
                            key(&again),
                            key(&n),
                            "{other:?} and {input:?} are one address but have different keys"
                        );
                    }
                }
            }
            assert!(domain_allowed(&n, &[]));
            assert!(domain_allowed(&n, &[dom.to_string()]));
            "ok".to_string()
        }
        Err(e) => {
            assert_eq!(e.code, codes::INVALID_INPUT, "{e:?}");
            assert_eq!(
                e.details.as_ref().and_then(|d| d.get("field")),
                Some(&serde_json::json!("email")),
                "{e:?}"
            );
            e.message
                .split(['\'', '"'])
                .next()
                .unwrap_or("")
                .to_string()
        }
    }
}
