//! The command line's commands that are more than a call into the server or the demo
//! (`main.rs` parses the arguments and maps results to exit codes). They sit at the top
//! of the crate: a command may use any layer, and no layer uses a command.

pub mod check;
