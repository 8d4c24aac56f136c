//! The cache backend conformance suite, written once and run against every backend.
