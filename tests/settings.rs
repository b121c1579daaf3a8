//! Placeholder: tests for settings arrive with the settings system.
