//! Registry store tests (filled in with the registry implementation).
