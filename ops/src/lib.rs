//! Operator tools, run from a workstation against AWS or the local stack: `replay` rebuilds
//! the inventory from the stream and compares it with the live table; `soak` (in the
//! binary) runs the local pipeline under sustained load. [`cli`] is their command line.

pub mod cli;
pub mod replay;
