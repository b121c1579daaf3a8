//! Placeholder: tests for role arrive with the role system.
