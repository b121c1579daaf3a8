//! Shared pieces of the benchmarks: the micro figures that both the
//! `syshost-bench` driver and the criterion benches measure.

pub mod micro;
