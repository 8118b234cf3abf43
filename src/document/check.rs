//! `voxbridge check`: validate a document and print its plan.

/// Checks `target` and writes the plan or the errors to `out`; returns the exit code
/// (0 valid, 1 invalid or unreachable).
pub async fn run(target: &str, out: &mut dyn std::io::Write) -> u8 {
    let _ = writeln!(out, "check {target}: not supported yet");
    1
}
