//! Issue 10: the store and the socket never strand a call. Each test is named after the
//! guarantee it checks, on the real binary, the simulator and real SQLite files.

mod e2e_support;

use e2e_support::common::process::{voxbridge_command, ServeProcess};
use std::path::Path;
use std::time::{Duration, Instant};

fn minimal_config(dir: &Path, db: &Path) -> std::path::PathBuf {
    let config = dir.join("voxbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[esl]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nurl = \"sqlite://{}\"\n[app]\ndefault_answer_url = \"file:///dev/null\"\n",
            db.display()
        ),
    )
    .unwrap();
    config
}

/// Two processes on one SQLite file would both claim the outbox (double delivery) and
/// the second would close the first one's live calls as `Unknown`: the second `serve`
/// must refuse to start, exit 2 and name the process holding the file.
#[test]
fn a_second_serve_on_one_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("voxbridge.db");
    let config = minimal_config(dir.path(), &db);
    let mut first_cmd = voxbridge_command();
    first_cmd.arg("serve").arg("--config").arg(&config);
    let mut first = ServeProcess::start(
        first_cmd,
        &dir.path().join("first.log"),
        Duration::from_secs(30),
    )
    .unwrap();

    let started = Instant::now();
    let second = voxbridge_command()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "second serve: {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "names the holder: {stderr}"
    );
    assert!(stderr.contains("voxbridge.db"), "names the file: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(first.try_wait().is_none(), "the first one keeps serving");
    assert!(
        !first.log_text().contains("pending again"),
        "nothing of the first one's was touched"
    );

    // Once the holder is gone (even killed), the file can be served again.
    drop(first);
    let mut again_cmd = voxbridge_command();
    again_cmd.arg("serve").arg("--config").arg(&config);
    let again = ServeProcess::start(
        again_cmd,
        &dir.path().join("again.log"),
        Duration::from_secs(30),
    );
    assert!(again.is_ok(), "{:?}", again.err());
}
