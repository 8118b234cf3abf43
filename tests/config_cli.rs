//! `voxbridge serve` and its configuration, through the real binary: a bad file or
//! variable stops the start with exit code 2 and a message naming the key (and nothing
//! is opened); no file runs on loopback defaults with SQLite in the working directory;
//! the environment beats the file; `VOXBRIDGE_CONFIG` names the file.

use crate::api_support::{get, Auth, Voxbridge};
use assert_cmd::Command;
use std::time::Duration;

/// Runs `voxbridge serve` expecting it to refuse to start; returns stderr.
fn refused(dir: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxbridge"));
    cmd.arg("serve").args(args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("VOXBRIDGE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.timeout(Duration::from_secs(20)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{args:?} {vars:?}: {stderr}");
    assert!(
        !dir.join("voxbridge.db").exists(),
        "a refused start opened the store"
    );
    stderr
}

#[test]
fn a_bad_file_or_variable_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let p = path.to_str().unwrap();
    for (toml, want) in [
        ("[esl]\nlisten = \"nowhere\"\n", "esl.listen"),
        ("[api]\nlisen = \"127.0.0.1:0\"\n", "api.lisen"),
        ("[app]\nfetch_timeout = -3\n", "app.fetch_timeout"),
        ("[outbox]\ninitial_backoff = 0\n", "outbox.initial_backoff"),
        ("[[route]]\ndestination = \"/[/\"\n", "route[0].destination"),
        ("[store\n", "TOML parse error at line 1"),
        (
            "[[switch]]\nname = \"fs-a\"\n[[switch]]\nname = \"fs-a\"\nesl = \"127.0.0.2:8021\"\n",
            "switch[1].name: \"fs-a\" is configured twice",
        ),
        (
            "[switch]\nesl = \"fs-a\"\n",
            "switch.esl: \"fs-a\" is not host:port",
        ),
    ] {
        std::fs::write(&path, toml).unwrap();
        let stderr = refused(dir.path(), &["--config", p], &[]);
        assert!(
            stderr.contains("configuration error") && stderr.contains(want),
            "{toml:?}: {stderr}"
        );
    }
    let stderr = refused(
        dir.path(),
        &[],
        &[("VOXBRIDGE_APP_FETCH_RETRIES", "several")],
    );
    assert!(
        stderr.contains("app.fetch_retries") && stderr.contains("VOXBRIDGE_APP_FETCH_RETRIES"),
        "{stderr}"
    );
    let stderr = refused(dir.path(), &[], &[("VOXBRIDGE_ESL_ALOW", "[]")]);
    assert!(stderr.contains("esl.alow"), "{stderr}");
    let stderr = refused(dir.path(), &["--config", "missing.toml"], &[]);
    assert!(stderr.contains("missing.toml"), "{stderr}");
    // The file named by VOXBRIDGE_CONFIG is read like --config.
    std::fs::write(&path, "[esl]\nmax_calls = 0\n").unwrap();
    let stderr = refused(dir.path(), &[], &[("VOXBRIDGE_CONFIG", p)]);
    assert!(stderr.contains("esl.max_calls"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_runs_on_loopback_with_sqlite_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    // Only the ports are moved off the defaults, so parallel tests do not collide.
    let mut vb = Voxbridge::start_with(
        dir.path(),
        &["serve"],
        &[
            ("VOXBRIDGE_ESL_LISTEN", "127.0.0.1:0"),
            ("VOXBRIDGE_API_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(vb.esl.ip().is_loopback() && vb.api.ip().is_loopback());
    assert!(
        dir.path().join("voxbridge.db").exists(),
        "SQLite in the cwd"
    );
    // No account configured: the REST API answers 401 to everything.
    let r = get(
        &vb,
        "/api/v1/Account/MA1/Call/",
        Auth::Headers("MA1", "anything"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.json["error"]
        .as_str()
        .unwrap()
        .contains("no account is configured"));
    let r = get(&vb, "/health", Auth::None).await;
    assert_eq!(r.status, 200);
    vb.sigterm();
    assert!(vb.wait_exit(Duration::from_secs(10)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("voxbridge.toml");
    std::fs::write(
        &path,
        r#"
[esl]
listen = "127.0.0.1:0"
[api]
listen = "127.0.0.1:0"
[store]
url = "sqlite:///nonexistent-directory/voxbridge.db"
[[account]]
auth_id = "MA1"
auth_token = "from-file"
"#,
    )
    .unwrap();
    let db = dir.path().join("from-env.db");
    let url = format!("sqlite://{}", db.display());
    let mut vb = Voxbridge::start_with(
        dir.path(),
        &["serve", "--config", path.to_str().unwrap()],
        &[("VOXBRIDGE_STORE_URL", &url)],
    );
    assert!(db.exists(), "the store URL from the environment was used");
    // The file's account is there.
    let r = get(
        &vb,
        "/api/v1/Account/MA1/Call/",
        Auth::Basic("MA1", "from-file"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    vb.sigterm();
    assert!(vb.wait_exit(Duration::from_secs(10)).await.success());
}
