//! Integration test harness (being written).
