//! `voxbridge demo`: the real binary, run from an empty directory (it needs no checkout,
//! no FreeSWITCH, no network). Each call's story is checked for how the call ended, what
//! voxbridge recorded and what the application received.

use assert_cmd::Command;
use std::time::Duration;

/// Runs `voxbridge demo <args>` in an empty directory: (exit code, stdout, stderr).
fn demo(args: &[&str]) -> (i32, String, String) {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .arg("demo")
        .args(args)
        .current_dir(cwd.path())
        .env_remove("RUST_LOG")
        .timeout(Duration::from_secs(60))
        .output()
        .expect("voxbridge runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The story of the call titled `title` (from its heading to the next blank line).
fn story<'a>(stdout: &'a str, title: &str) -> &'a str {
    let start = stdout
        .find(&format!(": {title}\n"))
        .unwrap_or_else(|| panic!("no story titled {title:?} in:\n{stdout}"));
    let rest = &stdout[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    &rest[..end]
}

fn assert_has(story: &str, needles: &[&str]) {
    for n in needles {
        assert!(story.contains(n), "missing {n:?} in:\n{story}");
    }
}

#[test]
fn short_demo_tells_each_call_and_exits_0() {
    let (code, stdout, stderr) = demo(&["--short"]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!stdout.contains("NOT AS EXPECTED"), "{stdout}");
    assert!(
        stdout.contains("5 of 5 calls ended as expected"),
        "{stdout}"
    );
    // The server's logs stay off by default: the output is the stories.
    assert!(stderr.trim().is_empty(), "unexpected stderr:\n{stderr}");

    let greeting = story(&stdout, "A greeting");
    assert_has(
        greeting,
        &[
            "POST /documents/greeting.xml (Event=StartApp, CallStatus=ringing), signature verified",
            "the call was answered (uuid_answer)",
            "heard (speak, flite/slt): Thank you for calling. Please hold on.",
            "heard (sleep): 1000 ms of silence",
            "heard (speak, flite/slt): Goodbye.",
            "BYE with cause NORMAL_CLEARING (Q.850 16)",
            "answered: yes",
            "HangupSource=Answer XML, HangupCauseName=Normal Hangup",
        ],
    );

    let busy = story(&stdout, "Busy, refused before answer");
    assert_has(
        busy,
        &[
            "the caller heard only ringing",
            "voxbridge ended the call (call-command hangup USER_BUSY)",
            "refused before answer with SIP 486 (USER_BUSY)",
            "answered: no; billed 0 s",
            "HangupCause=USER_BUSY (17), HangupSource=Answer XML, HangupCauseName=Busy Line, BillDuration=0 s",
        ],
    );
    assert!(
        !busy.contains("answered ("),
        "a busy reject must never answer:\n{busy}"
    );

    let post = story(&stdout, "Post-call workflow");
    assert_has(
        post,
        &[
            "heard (playback): http_cache://https://cdn.example.com/audio/closing.wav",
            "BYE with cause NORMAL_CLEARING",
            "post-call workflow POST http://127.0.0.1:",
            "/callbacks/post-call: delivered (1 attempt); the app received Event=PostCall",
        ],
    );

    let caller = story(&stdout, "The caller hangs up mid-sentence");
    assert_has(
        caller,
        &[
            "heard (speak, flite/slt): Thank you for calling. Please hold on.",
            "the Caller hung up (BYE, NORMAL_CLEARING)",
            "HangupSource=Caller, HangupCauseName=Caller Hangup",
        ],
    );
    assert!(
        !caller.contains("Goodbye."),
        "nothing runs after the caller hung up:\n{caller}"
    );

    let broken = story(&stdout, "A broken document");
    assert_has(
        broken,
        &[
            "voxbridge ended the call (call-command hangup CALL_REJECTED)",
            "refused before answer with SIP 603 (CALL_REJECTED)",
            "HangupSource=Error, HangupCauseName=Error: invalid document: line 4, col 3: <Hangup> attribute reason=\"later\"",
        ],
    );
    assert!(
        !broken.contains("heard (speak"),
        "an invalid document must not run at all:\n{broken}"
    );

    // Every call: the hangup callback was delivered, signed, and says what the CDR says.
    for title in [
        "A greeting",
        "Busy, refused before answer",
        "Post-call workflow",
        "The caller hangs up mid-sentence",
        "A broken document",
    ] {
        let s = story(&stdout, title);
        assert_has(
            s,
            &[
                "hangup callback POST http://127.0.0.1:",
                "/callbacks/hangup: delivered (1 attempt); the app received Event=Hangup",
                "signature verified",
                "=> as expected",
            ],
        );
        assert!(!s.contains("REJECTED:"), "{s}");
    }
}

#[test]
fn a_bad_speed_is_refused_with_a_clear_message() {
    let (code, stdout, stderr) = demo(&["--short", "--speed", "0"]);
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("--speed 0"), "{stderr}");
    let (code, _, stderr) = demo(&["--speed", "fast"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--speed"), "{stderr}");
}

/// The full demo adds the one-minute call (accelerated clock), VoxML and an empty
/// document. Ignored until the call engine attributes a fired `sched_hangup` with the
/// switch's clock: it compares the schedule's due time with voxbridge's own clock, so
/// against the accelerated simulator the fired schedule is recorded as
/// HangupSource=Unknown instead of Answer XML, and the demo (rightly) exits 1.
#[test]
fn full_demo_tells_every_call_and_exits_0() {
    let (code, stdout, stderr) = demo(&[]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("8 of 8 calls ended as expected"),
        "{stdout}"
    );

    let minute = story(&stdout, "Hang up after a minute");
    assert_has(
        minute,
        &[
            "a hangup was armed inside the switch (sched_hangup +60 NORMAL_CLEARING)",
            "heard (speak, flite/slt): This call ends after one minute. (x",
            "BYE with cause NORMAL_CLEARING",
            "HangupSource=Answer XML, HangupCauseName=Normal Hangup",
            "=> as expected",
        ],
    );
    assert_has(
        story(&stdout, "The greeting in VoxML"),
        &["heard (speak, flite/slt): Goodbye.", "=> as expected"],
    );
    assert_has(
        story(&stdout, "An empty document; the caller gives up"),
        &[
            "the caller heard only ringing",
            "the Caller gave up before answer (CANCEL, ORIGINATOR_CANCEL)",
            "CallStatus=cancel",
            "=> as expected",
        ],
    );
}
