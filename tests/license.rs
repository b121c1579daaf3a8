//! Placeholder: tests for license arrive with the license system.
