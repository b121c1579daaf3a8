//! Inline calls: running a plugin call on the thread that asks for it (an
//! async worker of the HTTP layer) instead of handing it to tokio's
//! blocking pool, when the call is guaranteed not to block.
//!
//! The contract (see [`OperationDecl::inline`](syshost_plugin_api::OperationDecl::inline)):
//! an operation declared `inline` answers from the plugin's memory. While a
//! call runs in inline mode (this thread, inside [`enter`]), everything
//! that could wait on the disk or on a lock held for long is refused at
//! once with [`codes::WOULD_BLOCK`]: every store read and write (a write
//! waits on the store's write gate, which a backup holds for the whole
//! copy; a cold read hits the disk), `publish` (delivering an event runs
//! subscribers that write), `send_mail` (a durable queue write), calls to
//! operations not declared `inline`, subject resolutions that miss the
//! subject cache, and waiting while an activation or shutdown records the
//! token resolver. An inline call writes nothing, so it has nothing to
//! flush either.
//!
//! Every refusal is recorded on the thread; [`InlineGuard::refused`] tells
//! the runner whether the attempt was refused anywhere, even when a plugin
//! swallowed the error. A refused attempt wrote nothing, so the runner can
//! discard its answer and run the whole call again on a blocking thread
//! with the usual budget — no side effect happens twice.

use std::cell::Cell;
use std::marker::PhantomData;

use syshost_plugin_api::{codes, PluginError};

thread_local! {
    /// Whether this thread runs an inline call, and whether anything was
    /// refused during it.
    static MODE: Cell<Mode> = const { Cell::new(Mode { active: false, refused: false }) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mode {
    active: bool,
    refused: bool,
}

/// Inline mode on this thread until dropped (restores the previous mode; a
/// refusal inside a nested attempt counts for the outer one too).
/// Not `Send`: the mode belongs to the thread that entered it.
#[must_use = "inline mode ends when the guard is dropped"]
pub struct InlineGuard {
    previous: Mode,
    _thread_bound: PhantomData<*const ()>,
}

impl InlineGuard {
    /// Whether a host service was refused since [`enter`] (the attempt
    /// must then be discarded and run again on a blocking thread).
    pub fn refused(&self) -> bool {
        MODE.with(|m| m.get().refused)
    }
}

impl Drop for InlineGuard {
    fn drop(&mut self) {
        let previous = self.previous;
        MODE.with(|m| {
            let refused = m.get().refused;
            m.set(Mode {
                active: previous.active,
                refused: previous.refused || (previous.active && refused),
            });
        });
    }
}

/// Runs this thread in inline mode until the guard is dropped.
pub fn enter() -> InlineGuard {
    let previous = MODE.with(|m| {
        m.replace(Mode {
            active: true,
            refused: false,
        })
    });
    InlineGuard {
        previous,
        _thread_bound: PhantomData,
    }
}

/// Whether this thread is running an inline call.
pub fn active() -> bool {
    MODE.with(|m| m.get().active)
}

/// Records a refusal and returns the `would_block` error for `what`.
pub fn refuse(what: &str) -> PluginError {
    MODE.with(|m| {
        let mut mode = m.get();
        mode.refused = true;
        m.set(mode);
    });
    PluginError::new(
        codes::WOULD_BLOCK,
        format!("{what} could block; not available to a call running inline"),
    )
}

/// `Err(would_block)` (recorded) in inline mode, `Ok` otherwise: the check
/// every service that may block starts with.
pub fn check(what: &str) -> Result<(), PluginError> {
    if active() {
        Err(refuse(what))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_per_thread_and_ends_with_the_guard() {
        assert!(!active());
        assert!(check("a store write").is_ok());
        {
            let guard = enter();
            assert!(active());
            assert!(!guard.refused());
            // Another thread is not in inline mode.
            std::thread::spawn(|| assert!(!active() && check("x").is_ok()))
                .join()
                .unwrap();
        }
        assert!(!active());
    }

    #[test]
    fn refusals_are_recorded_even_when_the_error_is_dropped() {
        let guard = enter();
        let err = check("a store write").unwrap_err();
        assert_eq!(err.code, codes::WOULD_BLOCK);
        assert!(err.message.contains("a store write"), "{err}");
        assert!(guard.refused());
        drop(guard);
        // A new attempt starts clean.
        let guard = enter();
        assert!(!guard.refused());
        let _ignored = refuse("publish");
        assert!(guard.refused());
    }

    #[test]
    fn nested_guards_restore_the_outer_mode_and_pass_refusals_up() {
        let outer = enter();
        {
            let inner = enter();
            assert!(!inner.refused());
        }
        assert!(active() && !outer.refused());
        {
            let inner = enter();
            let _ = refuse("x");
            assert!(inner.refused());
        }
        assert!(active());
        assert!(outer.refused(), "a nested refusal spoils the outer attempt");
        drop(outer);
        assert!(!active());
        assert!(!enter().refused());
    }
}
