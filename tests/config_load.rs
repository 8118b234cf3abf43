//! Configuration loading (SPEC §8) through the library: defaults, the SPEC's sample
//! file, `VOXBRIDGE_…` overrides and their precedence, and errors that name the key.

use std::path::PathBuf;
use voxbridge::config::{Account, Config, Route};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("voxbridge.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// The configuration block of SPEC §8, verbatim.
const SPEC_SAMPLE: &str = r#"
[esl]
listen = "127.0.0.1:8084"          # outbound-socket listener
allow = ["127.0.0.0/8", "::1/128"] # peers allowed to connect
[api]
listen = "127.0.0.1:8088"          # REST API, /metrics, /health
[store]
url = "sqlite://voxbridge.db"      # or postgres://…
[app]
default_answer_url = "http://127.0.0.1:5000/answer"   # http(s):// or file://
default_hangup_url = ""            # empty: the answer URL
fallback_answer_url = ""
status_callback_url = ""           # empty: no JSON status events
empty_document_timeout = 3600      # seconds
[[account]]                        # REST credentials; also the signing key of its calls
auth_id = "MA0000000001"
auth_token = "change-me"
[[route]]                          # first match on the called number wins
destination = "7000"               # exact, or /regex/
answer_url = "file://examples/documents/hello.xml"
hangup_url = ""
account = "MA0000000001"
"#;

#[test]
fn defaults_are_safe_loopback_and_sqlite_in_the_working_directory() {
    let c = Config::load_with_env(None, env(&[])).unwrap();
    assert_eq!(c.esl.listen.to_string(), "127.0.0.1:8084");
    assert_eq!(c.esl.allow, vec!["127.0.0.0/8", "::1/128"]);
    assert_eq!(c.esl.shutdown_grace, 30.0);
    assert_eq!(c.api.listen.to_string(), "127.0.0.1:8088");
    assert_eq!(c.store.url, "sqlite://voxbridge.db");
    assert_eq!(c.app.default_answer_url, "");
    assert_eq!(c.app.default_hangup_url, "");
    assert_eq!(c.app.fallback_answer_url, "");
    assert_eq!(c.app.status_callback_url, "");
    assert_eq!(c.app.empty_document_timeout, 3600);
    assert_eq!((c.app.connect_timeout, c.app.fetch_timeout), (2.0, 5.0));
    assert_eq!(c.app.fetch_retries, 2);
    assert_eq!(c.app.fetch_backoff_ms, vec![100, 400]);
    assert_eq!(
        (
            c.outbox.initial_backoff,
            c.outbox.max_backoff,
            c.outbox.give_up_after
        ),
        (1.0, 300.0, 86_400.0)
    );
    assert_eq!(c.tts.engine, "flite");
    assert_eq!(c.tts.voices["WOMAN"], "slt");
    assert_eq!(c.tts.voices["MAN"], "kal");
    assert!(c.accounts.is_empty() && c.routes.is_empty() && c.switches.is_empty());
}

#[test]
fn the_spec_sample_file_loads_with_every_key() {
    let (_dir, path) = file(SPEC_SAMPLE);
    let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
    assert_eq!(c.app.default_answer_url, "http://127.0.0.1:5000/answer");
    assert_eq!(
        c.accounts,
        vec![Account {
            auth_id: "MA0000000001".into(),
            auth_token: "change-me".into()
        }]
    );
    assert_eq!(
        c.routes,
        vec![Route {
            destination: "7000".into(),
            answer_url: "file://examples/documents/hello.xml".into(),
            account: "MA0000000001".into(),
            ..Route::default()
        }]
    );
}

#[test]
fn environment_overrides_the_file() {
    let (_dir, path) = file(
        r#"
[api]
listen = "127.0.0.1:9000"
[store]
url = "sqlite://from-file.db"
[app]
fetch_retries = 1
[switch]
esl = "127.0.0.1:8021"
password = "from-file"
"#,
    );
    let c = Config::load_with_env(
        Some(&path),
        env(&[
            ("VOXBRIDGE_API_LISTEN", "127.0.0.1:9100"),
            ("VOXBRIDGE_STORE_URL", "sqlite://from-env.db"),
            ("VOXBRIDGE_APP_FETCH_RETRIES", "4"),
            ("VOXBRIDGE_APP_FETCH_BACKOFF_MS", "[50, 60, 70]"),
            ("VOXBRIDGE_ESL_SHUTDOWN_GRACE", "2.5"),
            ("VOXBRIDGE_ESL_ALLOW", r#"["10.0.0.0/8"]"#),
            // A string key keeps digits as text.
            ("VOXBRIDGE_SWITCH_PASSWORD", "12345"),
            ("VOXBRIDGE_APP_DEFAULT_ANSWER_URL", "file:///srv/hello.xml"),
            // Not ours: ignored.
            ("VOXBRIDGE_CONFIG", "/elsewhere.toml"),
            ("HOME", "/root"),
        ]),
    )
    .unwrap();
    assert_eq!(c.api.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(c.store.url, "sqlite://from-env.db");
    assert_eq!(c.app.fetch_retries, 4);
    assert_eq!(c.app.fetch_backoff_ms, vec![50, 60, 70]);
    assert_eq!(c.esl.shutdown_grace, 2.5);
    assert_eq!(c.esl.allow, vec!["10.0.0.0/8"]);
    assert_eq!(c.switches.first().unwrap().password, "12345");
    assert_eq!(c.switches.first().unwrap().esl, "127.0.0.1:8021");
    assert_eq!(c.app.default_answer_url, "file:///srv/hello.xml");
    // Untouched keys keep the file's or the default value.
    assert_eq!(c.app.connect_timeout, 2.0);
}

/// Environment variables of one case.
type Vars<'a> = &'a [(&'a str, &'a str)];

#[test]
fn every_error_names_the_key() {
    let cases: &[(&str, Vars, &str)] = &[
        ("[esl]\nlisten = \"nowhere\"\n", &[], "esl.listen"),
        ("[esl]\nlistn = \"127.0.0.1:1\"\n", &[], "esl.listn"),
        ("[esl]\nallow = [\"10.0.0.0/33\"]\n", &[], "esl.allow"),
        ("[esl]\nhandshake_timeout = -1\n", &[], "esl.handshake_timeout"),
        ("[esl]\nshutdown_grace = -1\n", &[], "esl.shutdown_grace"),
        ("[esl]\nmax_calls = 0\n", &[], "esl.max_calls"),
        ("[apii]\nlisten = \"127.0.0.1:1\"\n", &[], "apii"),
        ("[app]\nfetch_retries = \"x\"\n", &[], "app.fetch_retries"),
        ("[app]\nfetch_timeout = 0\n", &[], "app.fetch_timeout"),
        ("[app]\nempty_document_timeout = 0\n", &[], "app.empty_document_timeout"),
        ("[app]\nfetch_backoff_ms = []\n", &[], "app.fetch_backoff_ms"),
        ("[outbox]\nmax_backoff = 0.1\ninitial_backoff = 5\n", &[], "outbox.max_backoff"),
        ("[outbox]\nconcurrency = 0\n", &[], "outbox.concurrency"),
        ("[[account]]\nauth_id = \"MA1\"\n", &[], "auth_token"),
        (
            "[[account]]\nauth_id = \"MA1\"\nauth_token = \"\"\n",
            &[],
            "account[0]",
        ),
        (
            "[[account]]\nauth_id = \"MA1\"\nauth_token = \"a\"\n[[account]]\nauth_id = \"MA1\"\nauth_token = \"b\"\n",
            &[],
            "account[1].auth_id",
        ),
        ("[[route]]\ndestination = \"/(/\"\n", &[], "route[0].destination"),
        ("[[route]]\ndestination = \"1\"\naccount = \"MA9\"\n", &[], "route[0].account"),
        ("", &[("VOXBRIDGE_APP_FETCH_RETRIES", "many")], "VOXBRIDGE_APP_FETCH_RETRIES"),
        ("", &[("VOXBRIDGE_ESL_LISTN", "127.0.0.1:1")], "esl.listn"),
        ("", &[("VOXBRIDGE_API_LISTEN", "somewhere")], "api.listen"),
        ("", &[("VOXBRIDGE_NOSECTION", "1")], "VOXBRIDGE_NOSECTION"),
        ("[esl\n", &[], "line 1"),
    ];
    for (toml, vars, want) in cases {
        let (_dir, path) = file(toml);
        let e = Config::load_with_env(Some(&path), env(vars))
            .expect_err(&format!("{toml:?} {vars:?} must fail"))
            .to_string();
        assert!(
            e.contains(want),
            "{toml:?} {vars:?}: {e:?} does not name {want}"
        );
    }
    let e = Config::load_with_env(Some(std::path::Path::new("/nonexistent/v.toml")), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/v.toml"), "{e}");
}

#[test]
fn asterisk_is_off_by_default_and_configured_by_file_or_environment() {
    let c = Config::load_with_env(None, env(&[])).unwrap();
    assert!(
        !c.asterisk.enabled,
        "a FreeSWITCH-only deployment binds nothing more"
    );
    assert_eq!(c.asterisk.agi_listen.to_string(), "127.0.0.1:4573");
    let (_dir, path) =
        file("[asterisk]\nenabled = true\nari_url = \"http://127.0.0.1:8088/ari\"\n");
    let c = Config::load_with_env(
        Some(&path),
        env(&[("VOXBRIDGE_ASTERISK_AGI_LISTEN", "127.0.0.1:14573")]),
    )
    .unwrap();
    assert!(c.asterisk.enabled);
    assert_eq!(c.asterisk.agi_listen.to_string(), "127.0.0.1:14573");
    assert_eq!(c.asterisk.ari_url, "http://127.0.0.1:8088/ari");
    let (_dir, path) = file("[asterisk]\nallow = [\"nope\"]\n");
    let e = Config::load_with_env(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("asterisk.allow"), "{e}");
}

/// Issue 17: AMI is off by default (empty address); given, it needs `host:port` and a
/// user, each refusal naming the key.
#[test]
fn asterisk_ami_is_off_by_default_and_its_keys_are_checked() {
    let c = Config::load_with_env(None, env(&[])).unwrap();
    assert_eq!(c.asterisk.ami_address, "");
    let (_dir, path) = file(
        "[asterisk]\nami_address = \"127.0.0.1:5038\"\nami_user = \"voxbridge\"\nami_secret = \"s\"\n",
    );
    let c = Config::load_with_env(
        Some(&path),
        env(&[("VOXBRIDGE_ASTERISK_AMI_SECRET", "from-env")]),
    )
    .unwrap();
    assert_eq!(c.asterisk.ami_address, "127.0.0.1:5038");
    assert_eq!(c.asterisk.ami_user, "voxbridge");
    assert_eq!(c.asterisk.ami_secret, "from-env");
    for (text, key) in [
        (
            "ami_address = \"localhost\"\nami_user = \"u\"",
            "asterisk.ami_address",
        ),
        (
            "ami_address = \"h:0\"\nami_user = \"u\"",
            "asterisk.ami_address",
        ),
        ("ami_address = \"127.0.0.1:5038\"", "asterisk.ami_user"),
    ] {
        let (_dir, path) = file(&format!("[asterisk]\n{text}\n"));
        let e = Config::load_with_env(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
}

/// SPEC §11.1, §13: outbound calls share `[dial]`'s dial strings. The first outbound
/// release's `[outbound] number_template`/`sip_profile` still load, as `[dial]`'s;
/// given in both sections with different values, the file is refused naming both.
#[test]
fn the_old_outbound_dial_string_keys_become_dial_and_a_disagreement_is_refused() {
    let (_d, path) = file(
        "[outbound]\nnumber_template = \"sofia/old/{number}\"\nsip_profile = \"oldprofile\"\nmax_cps = 5\n",
    );
    let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
    assert_eq!(c.dial.number_template, "sofia/old/{number}");
    assert_eq!(c.dial.sip_profile, "oldprofile");
    assert_eq!(c.outbound.number_template, None);
    assert_eq!(c.outbound.max_cps, 5.0);

    let (_d, path) = file(
        "[dial]\nnumber_template = \"sofia/old/{number}\"\n[outbound]\nnumber_template = \"sofia/old/{number}\"\n",
    );
    let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
    assert_eq!(c.dial.number_template, "sofia/old/{number}");

    let (_d, path) = file(
        "[dial]\nnumber_template = \"sofia/new/{number}\"\n[outbound]\nnumber_template = \"sofia/old/{number}\"\n",
    );
    let e = Config::load_with_env(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("outbound.number_template") && e.contains("dial.number_template"),
        "{e}"
    );

    let (_d, path) = file("[outbound]\nnumber_template = \"sofia/old\"\n");
    let e = Config::load_with_env(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dial.number_template: must contain {number}"),
        "{e}"
    );
}

/// SPEC §14: several `[[switch]]`, or one `[switch]` as before; names tell the switches
/// apart, so with several each needs one, unique; every ESL address is `host:port`.
#[test]
fn several_switches_are_named_and_one_switch_table_still_works() {
    let (_d, path) = file(
        r#"
[[switch]]
name = "fs-a"
esl = "127.0.0.1:8021"
password = "one"
[[switch]]
name = "fs-b"
esl = "fs-b.internal:8021"
password = "two"
"#,
    );
    let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
    let got: Vec<(&str, &str, &str)> = c
        .switches
        .iter()
        .map(|s| (s.name.as_str(), s.esl.as_str(), s.password.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("fs-a", "127.0.0.1:8021", "one"),
            ("fs-b", "fs-b.internal:8021", "two")
        ]
    );

    // One table, no name: the switch of every call.
    let (_d, path) = file("[switch]\nesl = \"10.0.0.5:8021\"\n");
    let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
    assert_eq!(c.switches.len(), 1);
    assert_eq!(c.switches.first().unwrap().esl, "10.0.0.5:8021");
    assert_eq!(c.switches.first().unwrap().name, "");

    let refused = |text: &str| {
        let (_d, path) = file(text);
        Config::load_with_env(Some(&path), env(&[]))
            .unwrap_err()
            .to_string()
    };
    let e = refused(
        "[[switch]]\nname = \"fs-a\"\nesl = \"127.0.0.1:8021\"\n\
         [[switch]]\nname = \"fs-a\"\nesl = \"127.0.0.2:8021\"\n",
    );
    assert!(
        e.contains("switch[1].name") && e.contains("configured twice"),
        "{e}"
    );
    let e = refused(
        "[[switch]]\nname = \"fs-a\"\nesl = \"127.0.0.1:8021\"\n\
         [[switch]]\nesl = \"127.0.0.2:8021\"\n",
    );
    assert!(
        e.contains("switch[1].name") && e.contains("required"),
        "{e}"
    );
    for bad in ["127.0.0.1", "127.0.0.1:0", ":8021", "a b:8021", "host:port"] {
        let e = refused(&format!("[switch]\nesl = {bad:?}\n"));
        assert!(
            e.contains("switch.esl") && e.contains("not host:port"),
            "{bad}: {e}"
        );
    }
    let e = refused("[[switch]]\nname = \"fs-a\"\nesl = \"127.0.0.1\"\n[[switch]]\nname = \"fs-b\"\nesl = \"127.0.0.1:8022\"\n");
    assert!(e.contains("switch[0].esl"), "{e}");
    let e = refused("[[switch]]\nname = \"fs-a\"\nport = 1\n");
    assert!(e.contains("switch"), "{e}");
}
