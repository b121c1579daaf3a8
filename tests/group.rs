//! Placeholder: tests for group arrive with the group system.
