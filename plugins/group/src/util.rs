//! Input validation, id generation and paging: the shared helpers of
//! [`syshost_plugin_api::validate`].

pub use syshost_plugin_api::validate::*;
