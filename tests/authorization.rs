//! Placeholder: tests for authorization arrive with the authorization system.
