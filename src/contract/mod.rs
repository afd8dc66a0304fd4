//! The measurement contract: the events a launch measures into RTMR3, their payloads, their
//! order, and what counts as a launch in a log. `run`, `plan` and `verify` all use it.

pub mod launches;
