//! `voxbridge check <file|url>`: the real binary, on files and on a URL served on
//! 127.0.0.1.

use std::path::Path;

use assert_cmd::Command;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs `voxbridge check <target>`: (exit code, stdout).
fn check(target: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .args(["check", target])
        .env("RUST_LOG", "off")
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .expect("voxbridge runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_valid_file_prints_its_plan_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busy.xml");
    std::fs::write(
        &file,
        "<Response>\n  <Speak>Sorry, we are busy</Speak>\n  <Wait length=\"2\"/>\n  <Hangup reason=\"busy\"/>\n</Response>\n",
    )
    .unwrap();
    let target = file.to_str().unwrap();
    let (code, stdout) = check(target);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "{target}: valid Answer XML document, 3 instructions\n\
             1  Speak voice=WOMAN language=en-US loop=1 \"Sorry, we are busy\" → speak once, after answering the call if not answered yet\n\
             2  Wait length=2 → sleep 2000 ms, in whatever state the call is (ringing, early media or answered)\n\
             3  Hangup reason=busy → hangup USER_BUSY (486 if unanswered)\n"
        )
    );
}

#[test]
fn an_invalid_file_lists_every_problem_with_line_and_column_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.xml");
    std::fs::write(
        &file,
        "<Response>\n  <Speak>Hi</Speak>\n    <Hangup reason=\"later\">bye</Hangup>\n</Response>\n",
    )
    .unwrap();
    let target = file.to_str().unwrap();
    let (code, stdout) = check(target);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "{target}: invalid Answer XML document\n\
             line 3, col 5: <Hangup> attribute reason=\"later\": expected rejected or busy\n\
             line 3, col 5: <Hangup> text \"bye\": not allowed, <Hangup> takes no text\n"
        )
    );
}

#[test]
fn file_urls_and_voxml_files_work_too() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/documents/reject-busy.json");
    let target = format!("file://{}", example.display());
    let (code, stdout) = check(&target);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with(&format!("{target}: valid VoxML document, 1 instruction\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains("1  Reject reason=busy → hangup USER_BUSY (486 if unanswered)"),
        "{stdout}"
    );
}

#[test]
fn a_missing_file_exits_1() {
    let (code, stdout) = check("/nonexistent/voxbridge/answer.xml");
    assert_eq!(code, 1);
    assert!(
        stdout.starts_with("/nonexistent/voxbridge/answer.xml: could not get a document: cannot read /nonexistent/voxbridge/answer.xml:"),
        "{stdout}"
    );
}

#[test]
fn every_shipped_example_checks_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/documents");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let (code, stdout) = check(path.to_str().unwrap());
        assert_eq!(code, 0, "{}: {stdout}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_is_fetched_like_a_new_call_and_checked() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/answer"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"voxml_version":"1.0","instructions":[{"verb":"Say","text":"Hi"},{"verb":"Hangup","reason":"rejected"}]}"#,
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/broken"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"voxml_version":"1.0","instructions":[{"verb":"Hangup","foo":1}]}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;

    let url = format!("{}/answer", server.uri());
    let target = url.clone();
    let (code, stdout) = tokio::task::spawn_blocking(move || check(&target))
        .await
        .unwrap();
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "{url}: valid VoxML document, 2 instructions\n\
             1  Speak voice=WOMAN language=en-US loop=1 \"Hi\" → speak once, after answering the call if not answered yet\n\
             2  Hangup reason=rejected → hangup CALL_REJECTED (603 if unanswered)\n"
        )
    );
    let reqs = server.received_requests().await.unwrap();
    let form: Vec<(String, String)> = form_urlencoded::parse(&reqs[0].body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("Event"), Some("StartApp"));
    assert_eq!(get("CallStatus"), Some("ringing"));
    assert_eq!(get("CallerName"), Some("voxbridge check"));
    assert!(get("CallUUID").is_some_and(|u| u.len() == 36));

    let broken = format!("{}/broken", server.uri());
    let target = broken.clone();
    let (code, stdout) = tokio::task::spawn_blocking(move || check(&target))
        .await
        .unwrap();
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "{broken}: invalid VoxML document\n\
             instructions[0]: Hangup field \"foo\": unknown field, expected reason or post_call_url\n"
        )
    );

    let down = format!("{}/down", server.uri());
    let target = down.clone();
    let (code, stdout) = tokio::task::spawn_blocking(move || check(&target))
        .await
        .unwrap();
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stdout,
        format!("{down}: could not get a document: HTTP 503\n")
    );
}
