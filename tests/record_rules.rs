//! SPEC §12.2 `<Record>` and §12.3 `DELETE Call/{uuid}/Record/`, rule by rule, end to
//! end on the simulator: the real `voxbridge serve` with `record.dir` in a temporary
//! directory, a real local application, the simulated switch writing real WAV files
//! (8 kHz mono) where voxbridge told it to, as the real one does (captures m, n, r, s,
//! t, u). Durations are the simulator's (simulated time), so they are exact enough to
//! compare with the file's own length.

use crate::e2e_support::*;
use std::path::Path;
use std::time::Duration;
use voxbridge_sim::{CallReport, Callee};

const SPEED: f64 = 4.0;

/// The SPEC §12.2 fields both the action and RecordStop carry.
const FIELDS: [&str; 9] = [
    "RecordingID",
    "RecordUrl",
    "RecordFile",
    "RecordingDuration",
    "RecordingDurationMs",
    "RecordingStartMs",
    "RecordingEndMs",
    "RecordingEndReason",
    "Digits",
];

fn options(dir: &Path) -> ServerOptions {
    ServerOptions {
        extra_toml: format!("[record]\ndir = \"{}\"\n", dir.display()),
        ..ServerOptions::default()
    }
}

/// A WAV file's sample rate and the duration of its data, from its header (a canonical
/// 44-byte PCM header, 16-bit mono), checked against the file's size.
fn wav_duration_ms(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() >= 44, "{} bytes", bytes.len());
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..16], b"WAVEfmt ");
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!(u16_at(20), 1, "PCM");
    assert_eq!(u16_at(22), 1, "mono");
    assert_eq!(u16_at(34), 16, "16-bit");
    let rate = u64::from(u32_at(24));
    assert_eq!(&bytes[36..40], b"data");
    let data = u64::from(u32_at(40));
    assert_eq!(
        data + 44,
        bytes.len() as u64,
        "the header's size is the file's"
    );
    data / 2 * 1000 / rate
}

fn app_named<'a>(r: &'a CallReport, name: &str) -> &'a voxbridge_sim::AppRecord {
    r.apps
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", requested(r)))
}

/// The first request on `path` about the call.
async fn hit_on(app: &App, path: &str, call_uuid: &str) -> Hit {
    app.wait_for(PATIENCE, &format!("{path} for {call_uuid}"), |hits| {
        hits.iter()
            .find(|h| h.path == path && h.param("CallUUID").as_deref() == Some(call_uuid))
            .cloned()
    })
    .await
}

fn num(hit: &Hit, key: &str) -> i64 {
    hit.must(key)
        .parse()
        .unwrap_or_else(|_| panic!("{key}={:?}", hit.param(key)))
}

/// Every §12.2 field of a finished recording, consistent with each other and the server.
fn check_fields(hit: &Hit, server: &Server, reason: &str, digits: &str) -> (String, i64) {
    for key in FIELDS {
        assert!(
            hit.param(key).is_some(),
            "{key} missing in {:?}",
            hit.params()
        );
    }
    let id = hit.must("RecordingID");
    let url = format!(
        "http://{}/api/v1/Account/{ACCOUNT}/Recording/{id}.wav",
        server.api
    );
    assert_eq!(hit.must("RecordUrl"), url);
    assert_eq!(hit.must("RecordFile"), url);
    let ms = num(hit, "RecordingDurationMs");
    assert_eq!(num(hit, "RecordingDuration"), ms / 1000);
    assert_eq!(
        num(hit, "RecordingEndMs") - num(hit, "RecordingStartMs"),
        ms,
        "start + duration = end"
    );
    assert!(num(hit, "RecordingEndMs") > 1_700_000_000_000, "epoch ms");
    assert_eq!(hit.must("RecordingEndReason"), reason);
    assert_eq!(hit.must("Digits"), digits);
    (id, ms)
}

async fn download(server: &Server, id: &str) -> (u16, String, Vec<u8>) {
    let url = format!(
        "http://{}/api/v1/Account/{ACCOUNT}/Recording/{id}.wav",
        server.api
    );
    let r = voxbridge::http_client::builder()
        .build()
        .unwrap()
        .get(url)
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_voicemail_max_length_5_finish_on_key_is_a_wav_the_action_record_stop_and_the_api_describe(
) {
    let dir = tempfile::tempdir().unwrap();
    let (app, server) = setup_with(options(dir.path())).await;
    let vm = app.status("/vm", 200);
    let rs = app.status("/rs", 200);
    let url = app.xml(
        "/doc/vm",
        &xml(&format!(
            "<Speak>Leave a message.</Speak>\
             <Record action=\"{vm}\" maxLength=\"5\" finishOnKey=\"#\" callbackUrl=\"{rs}\"/>\
             <Speak>Goodbye.</Speak>"
        )),
    );
    // speak, then the Record: beep, two sets, record (the 5th application).
    let script = answered(&url).dtmf_during_app(5, Duration::from_secs(2), "#");
    let r = report(sim(SPEED).place_call(script, server.esl)).await;

    assert_eq!(
        requested(&r),
        [
            "speak",
            "playback",
            "set",
            "set",
            "record",
            "unset",
            "speak",
            "call-command hangup NORMAL_CLEARING"
        ],
        "the beep, the finish keys, the record, then the next element (redirect=false)"
    );
    let record = app_named(&r, "record");
    let action = hit_on(&app, "/vm", &r.uuid).await;
    assert_eq!(action.must("Event"), "Record");
    action.verify_signature(app.port, TOKEN).expect("signed");
    let (id, ms) = check_fields(&action, &server, "FinishedOnKey", "#");
    let file = dir.path().join(format!("{id}.wav"));
    assert_eq!(
        record.arg,
        format!("{} 5 200 60", file.display()),
        "<record.dir>/<RecordingID>.wav, maxLength 5, silence 60"
    );
    assert!(
        (1800..=2600).contains(&ms),
        "recorded {ms} ms for a key at ~2 s"
    );
    let file_ms = wav_duration_ms(&file);
    assert!(
        file_ms.abs_diff(ms as u64) <= 1,
        "file {file_ms} ms, reported {ms} ms"
    );

    let stop = hit_on(&app, "/rs", &r.uuid).await;
    assert_eq!(stop.must("Event"), "RecordStop");
    stop.verify_signature(app.port, TOKEN).expect("signed");
    for key in FIELDS {
        assert_eq!(stop.param(key), action.param(key), "{key}");
    }

    let (status, list) = rest(
        &server,
        reqwest::Method::GET,
        &format!("Recording/?call_uuid={}", r.uuid),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["total_count"], 1, "{list}");
    let one = &list["objects"][0];
    assert_eq!(one["recording_id"], id.as_str());
    assert_eq!(one["call_uuid"], r.uuid.as_str());
    assert_eq!(one["recording_duration_ms"], ms);
    assert_eq!(one["recording_url"], action.must("RecordUrl").as_str());
    let (status, ctype, bytes) = download(&server, &id).await;
    assert_eq!((status, ctype.as_str()), (200, "audio/wav"));
    assert_eq!(
        bytes,
        std::fs::read(&file).unwrap(),
        "the file, byte for byte"
    );
    let (status, _) = rest(
        &server,
        reqwest::Method::DELETE,
        &format!("Recording/{id}/"),
    )
    .await;
    assert_eq!(status, 204);
    assert!(!file.exists(), "deleting removes the file");
    assert_eq!(download(&server, &id).await.0, 404);

    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n.contains(&id) && n.contains("ended by FinishedOnKey")),
        "{:?}",
        cdr.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_ends_on_max_length_on_silence_and_on_hangup_each_named() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server) = setup_with(options(dir.path())).await;
    app.status("/rs", 200);
    app.status("/act", 200);
    let rs = app.url("/rs");
    let act = app.url("/act");
    let next = app.xml("/next", &xml("<Speak>Got it.</Speak>"));
    let sim = sim(SPEED);

    // maxLength, redirect="true": the action's document runs instead of the rest.
    let url = app.xml(
        "/doc/max",
        &xml(&format!(
            "<Record action=\"{next}\" redirect=\"true\" maxLength=\"2\" playBeep=\"false\" \
             callbackUrl=\"{rs}\"/><Speak>Never heard.</Speak>"
        )),
    );
    let max = sim.place_call(answered(&url), server.esl);
    // Silence: 1.5 s of it ends a Record with timeout=1 (the simulator's caller is
    // silent from the start; the real switch counts the timeout in packets).
    let url = app.xml(
        "/doc/silence",
        &xml(&format!(
            "<Record action=\"{act}\" timeout=\"1\" playBeep=\"false\" callbackUrl=\"{rs}\"/>"
        )),
    );
    let silence = sim.place_call(
        answered(&url).record_silence_after(Duration::from_millis(1500)),
        server.esl,
    );
    // The caller hangs up 1 s into the record (its 3rd application).
    let url = app.xml(
        "/doc/hangup",
        &xml(&format!(
            "<Record action=\"{act}\" playBeep=\"false\" callbackUrl=\"{rs}\"/>"
        )),
    );
    let hangup = sim.place_call(
        answered(&url).caller_hangs_up_during_app(3, Duration::from_secs(1)),
        server.esl,
    );
    let (max, silence, hangup) = tokio::join!(report(max), report(silence), report(hangup));

    let fetched = hit_on(&app, "/next", &max.uuid).await;
    assert_eq!(fetched.must("Event"), "Record");
    let (_, ms) = check_fields(&fetched, &server, "maxLength", "");
    assert!(
        (2000..3100).contains(&ms),
        "a limit of 2 runs to the next whole second: {ms}"
    );
    assert_eq!(
        requested(&max),
        [
            "set",
            "set",
            "record",
            "unset",
            "speak",
            "call-command hangup NORMAL_CLEARING"
        ],
        "no beep; the action's document replaced the rest"
    );
    assert!(ran(&max).contains(&"speak flite|slt|Got it.".to_string()));
    let stop = hit_on(&app, "/rs", &max.uuid).await;
    assert_eq!(stop.must("RecordingEndReason"), "maxLength");

    let action = hit_on(&app, "/act", &silence.uuid).await;
    let (_, ms) = check_fields(&action, &server, "RecordingTimeout", "");
    assert_eq!(ms, 1500);

    let action = hit_on(&app, "/act", &hangup.uuid).await;
    let (id, ms) = check_fields(&action, &server, "HungUp", "");
    assert!((900..=1300).contains(&ms), "{ms}");
    assert_eq!(
        wav_duration_ms(&dir.path().join(format!("{id}.wav"))),
        ms as u64
    );
    let stop = hit_on(&app, "/rs", &hangup.uuid).await;
    assert_eq!(stop.must("RecordingID"), id);
    let (_, list) = rest(
        &server,
        reqwest::Method::GET,
        &format!("Recording/?call_uuid={}", hangup.uuid),
    )
    .await;
    assert_eq!(list["meta"]["total_count"], 1, "{list}");
    let cb = app.hangup_callback(&hangup.uuid).await;
    assert_eq!(cb.must("HangupSource"), "Caller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_session_records_the_whole_call_including_a_speak_and_goes_on_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server) = setup_with(options(dir.path())).await;
    app.status("/rs", 200);
    app.status("/act", 200);
    let (rs, act) = (app.url("/rs"), app.url("/act"));
    let url = app.xml(
        "/doc/session",
        &xml(&format!(
            "<Record recordSession=\"true\" action=\"{act}\" redirect=\"true\" callbackUrl=\"{rs}\"/>\
             <Speak>Thank you for calling.</Speak><Wait length=\"1\"/>"
        )),
    );
    let script = ringing(&url).speak_length("Thank you for calling.", Duration::from_secs(3));
    let r = report(sim(SPEED).place_call(script, server.esl)).await;

    assert_eq!(
        commands_with(&r, "uuid_answer").len(),
        1,
        "answered once, with api uuid_answer: {:?}",
        r.commands
    );
    assert_eq!(
        requested(&r),
        [
            "record_session",
            "speak",
            "sleep",
            "call-command hangup NORMAL_CLEARING"
        ],
        "it answers, starts the recording and goes on at once"
    );
    let started = app_named(&r, "record_session").started_at.unwrap();
    let hung_up = r.hangup_at.expect("hung up");
    let call_ms = (hung_up - started).as_millis() as i64;
    let stop = hit_on(&app, "/rs", &r.uuid).await;
    assert_eq!(stop.must("Event"), "RecordStop");
    let (id, ms) = check_fields(&stop, &server, "HungUp", "");
    assert!(
        ms >= 4000,
        "the Speak (3 s) and the Wait (1 s) are in it: {ms}"
    );
    assert!(
        ms.abs_diff(call_ms) <= 250,
        "the file ({ms} ms) is the call from the recording's start to the hangup ({call_ms} ms)"
    );
    assert_eq!(
        wav_duration_ms(&dir.path().join(format!("{id}.wav"))),
        ms as u64
    );
    // A background recording's action goes through the outbox (redirect is for a
    // plain Record only).
    let action = hit_on(&app, "/act", &r.uuid).await;
    assert_eq!(action.must("RecordingID"), id);
    let (_, rec) = rest(&server, reqwest::Method::GET, &format!("Recording/{id}/")).await;
    assert_eq!(rec["recording_duration_ms"], ms, "{rec}");
    let cb = app.hangup_callback(&r.uuid).await;
    assert_eq!(cb.must("HangupCauseName"), "End Of XML Instructions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_delete_call_record_stops_the_calls_recordings_now_and_the_call_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server) = setup_with(options(dir.path())).await;
    app.status("/rs", 200);
    let rs = app.url("/rs");
    let url = app.xml(
        "/doc/stop",
        &xml(&format!(
            "<Record recordSession=\"true\" callbackUrl=\"{rs}\"/><Wait length=\"60\"/>"
        )),
    );
    let call = sim(2.0).place_call(answered(&url), server.esl);
    let fetch = app
        .wait_for(PATIENCE, "the document fetch", |hits| {
            hits.iter().find(|h| h.path == "/doc/stop").cloned()
        })
        .await;
    let uuid = fetch.must("CallUUID");
    // The recording has started once the Wait runs; stop it.
    let path = format!("Call/{uuid}/Record/");
    let mut stopped = false;
    for _ in 0..200 {
        let (status, body) = rest(&server, reqwest::Method::DELETE, &path).await;
        assert_eq!(status, 204, "{body}");
        if !app.callbacks_for("/rs", &uuid).is_empty() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stopped, "no RecordStop after DELETE Call/{{uuid}}/Record/");
    let stop = hit_on(&app, "/rs", &uuid).await;
    let (id, ms) = check_fields(&stop, &server, "Stopped", "");
    assert!(
        dir.path().join(format!("{id}.wav")).exists(),
        "the stopped file is there"
    );
    assert!(ms < 60_000);
    // Stopping again is harmless; the call is still up: it ends by REST.
    assert_eq!(rest(&server, reqwest::Method::DELETE, &path).await.0, 204);
    let (status, _) = rest(&server, reqwest::Method::DELETE, &format!("Call/{uuid}/")).await;
    assert_eq!(status, 204);
    let r = report(call).await;
    assert_eq!(
        commands_with(&r, "uuid_record").len(),
        1,
        "one stop for one recording: {:?}",
        r.commands
    );
    assert_eq!(app.callbacks_for("/rs", &uuid).len(), 1, "one RecordStop");
    let cb = app.hangup_callback(&uuid).await;
    assert_eq!(cb.must("HangupSource"), "API");
    assert_eq!(rest(&server, reqwest::Method::DELETE, &path).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_start_on_dial_answer_records_from_the_callees_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server) = setup_with(options(dir.path())).await;
    app.status("/rs", 200);
    let rs = app.url("/rs");
    let url = app.xml(
        "/doc/dial",
        &xml(&format!(
            "<Record startOnDialAnswer=\"true\" callbackUrl=\"{rs}\"/>\
             <Dial><Number>7002</Number></Dial>"
        )),
    );
    let script = ringing(&url).callee(
        "7002",
        Callee::Answers {
            after: Duration::from_secs(2),
            hangs_up_after: Some(Duration::from_secs(3)),
        },
    );
    let r = report(sim(SPEED).place_call(script, server.esl)).await;

    assert!(
        !requested(&r).iter().any(|a| a == "answer"),
        "a Record armed for the Dial does not answer: {:?}",
        requested(&r)
    );
    let starts = commands_with(&r, "uuid_record");
    assert_eq!(starts.len(), 1, "{:?}", r.commands);
    assert!(starts[0].contains(" start "), "{}", starts[0]);
    let stop = hit_on(&app, "/rs", &r.uuid).await;
    let (id, ms) = check_fields(&stop, &server, "HungUp", "");
    assert!(
        (2700..=3500).contains(&ms),
        "from the callee's answer (2 s of ringing not in it) to the end: {ms}"
    );
    assert!(starts[0].contains(&format!("{id}.wav")));
    let cb = app.hangup_callback(&r.uuid).await;
    assert_eq!(cb.must("HangupCauseName"), "Callee Hangup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_inside_gather_is_a_document_error_naming_line_and_column_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server) = setup_with(options(dir.path())).await;
    let url = app.xml(
        "/doc/bad",
        "<Response>\n  <Gather action=\"https://a.test/\">\n    <Record/>\n  </Gather>\n</Response>",
    );
    let r = report(sim(SPEED).place_call(ringing(&url), server.esl)).await;

    assert_eq!(
        requested(&r),
        ["call-command hangup CALL_REJECTED"],
        "nothing of it runs"
    );
    let cb = app.hangup_callback(&r.uuid).await;
    assert_eq!(cb.must("HangupSource"), "Error");
    let name = cb.must("HangupCauseName");
    assert!(
        name.contains("line 3, col 5") && name.contains("<Record> inside <Gather>"),
        "{name}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_mp3_without_the_switch_s_mp3_is_wav_noted_and_a_rest_stop_ends_a_plain_record() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server) = setup_with(options(dir.path())).await;
    app.status("/act", 200);
    let act = app.url("/act");
    let url = app.xml(
        "/doc/mp3",
        &xml(&format!(
            "<Record action=\"{act}\" fileFormat=\"mp3\" maxLength=\"60\" playBeep=\"false\"/>\
             <Speak>After.</Speak>"
        )),
    );
    // The caller is silent for longer than the test: only the stop ends the record.
    // The Speak after it lasts, so the call is still up while the test stops and checks.
    let script = answered(&url)
        .record_silence_after(Duration::from_secs(600))
        .speak_length("After.", Duration::from_secs(60));
    let call = sim(2.0).place_call(script, server.esl);
    let fetch = app
        .wait_for(PATIENCE, "the document fetch", |hits| {
            hits.iter().find(|h| h.path == "/doc/mp3").cloned()
        })
        .await;
    let uuid = fetch.must("CallUUID");
    // Stop once the record runs (the REST stop of a call with nothing recording yet is a
    // harmless 204: keep asking until the action says it ended).
    let path = format!("Call/{uuid}/Record/");
    for _ in 0..400 {
        assert_eq!(rest(&server, reqwest::Method::DELETE, &path).await.0, 204);
        if !app.callbacks_for("/act", &uuid).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let action = hit_on(&app, "/act", &uuid).await;
    let (id, _) = check_fields(&action, &server, "Stopped", "");
    assert!(
        dir.path().join(format!("{id}.wav")).exists(),
        "made as wav: {:?}",
        std::fs::read_dir(dir.path()).unwrap().collect::<Vec<_>>()
    );
    assert_eq!(
        rest(&server, reqwest::Method::DELETE, &format!("Call/{uuid}/"))
            .await
            .0,
        204
    );
    let r = report(call).await;
    assert_eq!(
        requested(&r),
        ["set", "set", "record", "unset", "speak"],
        "the document goes on after the stopped Record (the REST hangup ends the Speak)"
    );
    assert_eq!(commands_with(&r, "uuid_break").len(), 1, "{:?}", r.commands);
    let cdr = server.cdr(&uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n.contains("fileFormat mp3") && n.contains("recorded as wav")),
        "{:?}",
        cdr.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_voxml_verb_runs_with_snake_case_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server) = setup_with(options(dir.path())).await;
    app.status("/act", 200);
    app.status("/rs", 200);
    let (act, rs) = (app.url("/act"), app.url("/rs"));
    let url = app.voxml(
        "/doc/voxml",
        &format!(
            r##"{{"voxml_version":"1.0","instructions":[
                {{"verb":"Record","action":"{act}","max_length":5,"finish_on_key":"#",
                  "play_beep":false,"callback_url":"{rs}"}},
                {{"verb":"Hangup","reason":"busy"}}]}}"##
        ),
    );
    let script = answered(&url).dtmf_during_app(3, Duration::from_secs(1), "#");
    let r = report(sim(SPEED).place_call(script, server.esl)).await;

    assert_eq!(
        requested(&r),
        [
            "set",
            "set",
            "record",
            "unset",
            "call-command hangup USER_BUSY"
        ]
    );
    let action = hit_on(&app, "/act", &r.uuid).await;
    let (id, ms) = check_fields(&action, &server, "FinishedOnKey", "#");
    assert!((800..=1600).contains(&ms), "{ms}");
    assert_eq!(hit_on(&app, "/rs", &r.uuid).await.must("RecordingID"), id);
    assert_eq!(
        app.hangup_callback(&r.uuid).await.must("HangupCause"),
        "USER_BUSY"
    );
}

/// `voxbridge check` (the real binary): a bad Record names line and column, a good one
/// prints what it will do.
#[test]
fn record_check_cli_reports_bad_records_and_plans_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxbridge"))
            .args(["check", path.to_str().unwrap()])
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check(
        "bad.xml",
        "<Response>\n  <Speak>hi</Speak>\n  <Record recordSession=\"true\" startOnDialAnswer=\"true\" maxLength=\"0\"/>\n</Response>\n",
    );
    assert_eq!(code, Some(1), "{out}");
    for line in [
        r#"line 3, col 3: <Record> attribute maxLength="0": expected a whole number of seconds from 1 to 14400"#,
        r#"line 3, col 3: <Record> attribute startOnDialAnswer="true": recordSession="true" already records the whole call from now: choose one"#,
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let (code, out) = check(
        "vm.xml",
        "<Response>\n  <Record action=\"https://a.test/vm\" maxLength=\"5\" finishOnKey=\"#\"/>\n</Response>\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Record maxLength=5 timeout=60 finishOnKey=# playBeep=true")
            && out.contains("POST https://a.test/vm (Event=Record) through the outbox"),
        "{out}"
    );
}

/// SPEC §14: `DELETE Call/{uuid}/Record/` through a node that does not hold the call is
/// passed to the one that does, as `DELETE Call/{uuid}/` is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_rest_stop_through_another_node_of_a_fleet_reaches_the_call() {
    let Some(db) = crate::pg_support::fresh_database().await else {
        eprintln!("SKIPPED: no PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = App::start().await;
    let node = |id: &str| ServerOptions {
        store_url: Some(db.clone()),
        extra_toml: format!(
            "[node]\nid = \"{id}\"\n[record]\ndir = \"{}\"\n",
            dir.path().display()
        ),
        ..ServerOptions::default()
    };
    let a = Server::start(&app, node("node-a")).await;
    let b = Server::start(&app, node("node-b")).await;
    app.status("/rs", 200);
    let rs = app.url("/rs");
    let url = app.xml(
        "/doc/fleet",
        &xml(&format!(
            "<Record recordSession=\"true\" callbackUrl=\"{rs}\"/><Wait length=\"60\"/>"
        )),
    );
    let call = sim(2.0).place_call(answered(&url), a.esl);
    let uuid = call.uuid.clone();
    let path = format!("Call/{uuid}/Record/");
    // Through B, until A's recording has started and stopped (204 either way).
    for _ in 0..200 {
        let (status, body) = rest(&b, reqwest::Method::DELETE, &path).await;
        assert_eq!(status, 204, "{body}");
        if !app.callbacks_for("/rs", &uuid).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop = hit_on(&app, "/rs", &uuid).await;
    assert_eq!(stop.must("RecordingEndReason"), "Stopped");
    assert!(b
        .log_text()
        .contains("REST request passed to the node holding the call"));
    let (status, _) = rest(&b, reqwest::Method::DELETE, &format!("Call/{uuid}/")).await;
    assert_eq!(status, 204);
    call.report_within(PATIENCE).await.unwrap();
    app.hangup_callback(&uuid).await;
    assert_eq!(rest(&b, reqwest::Method::DELETE, &path).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_rest_stop_during_the_beep_still_stops_the_record_not_the_beep() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server) = setup_with(options(dir.path())).await;
    app.status("/act", 200);
    let act = app.url("/act");
    let url = app.xml(
        "/doc/beep",
        &xml(&format!(
            "<Record action=\"{act}\" maxLength=\"60\"/><Speak>After.</Speak>"
        )),
    );
    // A 3 s beep (the switch plays half a second; long here so the stop lands in it).
    let script = answered(&url)
        .playback_length(
            "tone_stream://%(500,0,1000)",
            voxbridge_sim::PlayLength::For(Duration::from_secs(3)),
        )
        .record_silence_after(Duration::from_secs(600))
        .speak_length("After.", Duration::from_secs(60));
    let call = sim(1.0).place_call(script, server.esl);
    let fetch = app
        .wait_for(PATIENCE, "the document fetch", |hits| {
            hits.iter().find(|h| h.path == "/doc/beep").cloned()
        })
        .await;
    let uuid = fetch.must("CallUUID");
    // Once (the beep lasts 3 s from the document's arrival): stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = format!("Call/{uuid}/Record/");
    assert_eq!(rest(&server, reqwest::Method::DELETE, &path).await.0, 204);
    let action = hit_on(&app, "/act", &uuid).await;
    let (_, ms) = check_fields(&action, &server, "Stopped", "");
    assert!(ms < 1000, "the record stopped as soon as it ran: {ms} ms");
    assert_eq!(
        rest(&server, reqwest::Method::DELETE, &format!("Call/{uuid}/"))
            .await
            .0,
        204
    );
    let r = report(call).await;
    let beep = app_named(&r, "playback");
    let played = beep.ended_at.unwrap() - beep.started_at.unwrap();
    assert!(
        played >= Duration::from_millis(2900),
        "the beep was not cut: {played:?}"
    );
    assert_eq!(commands_with(&r, "uuid_break").len(), 1, "{:?}", r.commands);
}
