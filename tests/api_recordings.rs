//! The recordings API (SPEC §12.3) through the real `voxbridge serve` binary over a store
//! on disk: list (paging, `call_uuid`), get (exact fields, `recording_url`), the audio with
//! byte ranges (200, 206 + `Content-Range`, 416), delete (204, the file removed, 404
//! after), account scoping (another account: 404), and `DELETE Call/{uuid}/Record/` of a
//! call that is not live (404; a live call's recordings: `record_rules`).

use crate::api_support::*;
use std::path::Path;
use time::OffsetDateTime;
use voxbridge::store::{self, Recording, RecordingEndReason, RecordingKind};

fn base(account: &str) -> String {
    format!("/api/v1/Account/{account}")
}

/// A WAV file of `ms` milliseconds of 8 kHz 16-bit mono silence, as the switch writes one.
fn write_wav(path: &Path, ms: u64) -> Vec<u8> {
    let data = (ms * 8 * 2) as u32;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&8000u32.to_le_bytes());
    bytes.extend_from_slice(&16000u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data.to_le_bytes());
    // Not all zeros, so a range shows which bytes it got.
    bytes.extend((0..data).map(|i| (i % 251) as u8));
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn recording(dir: &Path, id: &str, call: &str, account: &str, created: i64) -> Recording {
    let at = |s: i64| OffsetDateTime::from_unix_timestamp(1_790_000_000 + s).unwrap();
    Recording {
        recording_id: id.to_string(),
        call_uuid: call.to_string(),
        account_id: account.to_string(),
        kind: RecordingKind::Caller,
        file_path: dir.join(format!("{id}.wav")).display().to_string(),
        format: "wav".to_string(),
        duration_ms: 1500,
        start: at(created - 2),
        end: at(created) - time::Duration::milliseconds(500),
        end_reason: RecordingEndReason::FinishedOnKey,
        from_number: "15551230000".to_string(),
        to_number: "7000".to_string(),
        created_at: at(created),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    vb: Voxbridge,
    _app: App,
    rec_dir: std::path::PathBuf,
    audio: Vec<u8>,
    big: Vec<u8>,
}

/// Three recordings in the store before voxbridge starts: two of account ONE (calls a
/// and b), one of TWO; their files in `recordings/`.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("recordings");
    std::fs::create_dir(&rec_dir).unwrap();
    let audio = write_wav(&rec_dir.join("rec-a.wav"), 1500);
    // Over 64 KiB: served in more than one chunk.
    let big = write_wav(&rec_dir.join("rec-b.wav"), 5000);
    write_wav(&rec_dir.join("rec-two.wav"), 500);
    {
        let url = format!("sqlite://{}", dir.path().join("voxbridge.db").display());
        let store = store::open(&url).await.unwrap();
        for r in [
            recording(&rec_dir, "rec-a", "call-a", ONE.0, 10),
            recording(&rec_dir, "rec-b", "call-b", ONE.0, 20),
            recording(&rec_dir, "rec-two", "call-two", TWO.0, 30),
        ] {
            store.add_recording(r).await.unwrap();
        }
        store.close().await;
    }
    let app = App::start().await;
    let vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    Fixture {
        _dir: dir,
        vb,
        _app: app,
        rec_dir,
        audio,
        big,
    }
}

const RECORDING_FIELDS: &[&str] = &[
    "recording_id",
    "call_uuid",
    "recording_format",
    "recording_type",
    "recording_duration_ms",
    "recording_start_ms",
    "recording_end_ms",
    "recording_url",
    "add_time",
    "from_number",
    "to_number",
    "resource_uri",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_listed_newest_first_paged_and_filtered_by_call() {
    let f = fixture().await;
    let one = Auth::Headers(ONE.0, ONE.1);
    let r = get(&f.vb, &format!("{}/Recording/", base(ONE.0)), one).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(&r.json), key_set(&["api_id", "meta", "objects"]));
    assert_eq!(r.json["meta"]["total_count"], 2);
    let ids: Vec<&str> = r.json["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["recording_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["rec-b", "rec-a"]);
    for o in r.json["objects"].as_array().unwrap() {
        assert_eq!(keys(o), key_set(RECORDING_FIELDS), "{o}");
    }
    // Paging, without the trailing slash.
    let r = get(
        &f.vb,
        &format!("{}/Recording?limit=1&offset=1", base(ONE.0)),
        one,
    )
    .await;
    assert_eq!(r.json["objects"][0]["recording_id"], "rec-a");
    assert_eq!(
        r.json["meta"]["previous"],
        format!("{}/Recording/?limit=1&offset=0", base(ONE.0))
    );
    assert!(r.json["meta"]["next"].is_null());
    // One call's recordings.
    let r = get(
        &f.vb,
        &format!("{}/Recording/?call_uuid=call-a", base(ONE.0)),
        one,
    )
    .await;
    assert_eq!(r.json["meta"]["total_count"], 1);
    assert_eq!(r.json["objects"][0]["recording_id"], "rec-a");
    // Another account's call: nothing.
    let r = get(
        &f.vb,
        &format!("{}/Recording/?call_uuid=call-two", base(ONE.0)),
        one,
    )
    .await;
    assert_eq!(r.json["meta"]["total_count"], 0);
    // An unknown filter is an error, never ignored.
    let r = get(
        &f.vb,
        &format!("{}/Recording/?from_number=1", base(ONE.0)),
        one,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_shows_every_field_and_its_url() {
    let f = fixture().await;
    let one = Auth::Headers(ONE.0, ONE.1);
    for path in ["Recording/rec-a/", "Recording/rec-a"] {
        let r = get(&f.vb, &format!("{}/{path}", base(ONE.0)), one).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let mut want = RECORDING_FIELDS.to_vec();
        want.push("api_id");
        assert_eq!(keys(&r.json), key_set(&want));
        let j = &r.json;
        assert_eq!(j["recording_id"], "rec-a");
        assert_eq!(j["call_uuid"], "call-a");
        assert_eq!(j["recording_format"], "wav");
        assert_eq!(j["recording_type"], "call");
        assert_eq!(j["recording_duration_ms"], 1500);
        assert_eq!(j["recording_start_ms"], 1_790_000_008_000i64);
        assert_eq!(j["recording_end_ms"], 1_790_000_009_500i64);
        assert_eq!(j["add_time"], "2026-09-21 14:13:30"); // 1_790_000_010 UTC
        assert_eq!(j["from_number"], "15551230000");
        assert_eq!(j["to_number"], "7000");
        assert_eq!(
            j["resource_uri"],
            format!("{}/Recording/rec-a/", base(ONE.0))
        );
        // No api.public_url configured: the API's own address.
        assert_eq!(
            j["recording_url"],
            format!("http://{}{}/Recording/rec-a.wav", f.vb.api, base(ONE.0))
        );
    }
}

async fn audio(
    f: &Fixture,
    account: (&str, &str),
    name: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut req = client()
        .get(f.vb.url(&format!("{}/Recording/{name}", base(account.0))))
        .header("X-Auth-ID", account.0)
        .header("X-Auth-Token", account.1);
    if let Some(range) = range {
        req = req.header("Range", range);
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audio_is_served_whole_or_by_byte_range() {
    let f = fixture().await;
    let size = f.audio.len();
    let whole = audio(&f, ONE, "rec-a.wav", None).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "content-type"), "audio/wav");
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), f.audio.as_slice());

    // The RIFF header alone.
    let head = audio(&f, ONE, "rec-a.wav", Some("bytes=0-43")).await;
    assert_eq!(head.status(), 206);
    assert_eq!(header(&head, "content-range"), format!("bytes 0-43/{size}"));
    assert_eq!(head.bytes().await.unwrap().as_ref(), &f.audio[..44]);
    // From an offset to the end, and the last bytes.
    let tail = audio(&f, ONE, "rec-a.wav", Some("bytes=1000-")).await;
    assert_eq!(tail.status(), 206);
    assert_eq!(
        header(&tail, "content-range"),
        format!("bytes 1000-{}/{size}", size - 1)
    );
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &f.audio[1000..]);
    let last = audio(&f, ONE, "rec-a.wav", Some("bytes=-10")).await;
    assert_eq!(last.status(), 206);
    assert_eq!(last.bytes().await.unwrap().as_ref(), &f.audio[size - 10..]);
    // Past the end.
    let past = audio(&f, ONE, "rec-a.wav", Some(&format!("bytes={size}-"))).await;
    assert_eq!(past.status(), 416);
    assert_eq!(header(&past, "content-range"), format!("bytes */{size}"));
    // A file larger than one chunk, whole and across a chunk boundary.
    let whole = audio(&f, ONE, "rec-b.wav", None).await;
    assert_eq!(header(&whole, "content-length"), f.big.len().to_string());
    assert_eq!(whole.bytes().await.unwrap().as_ref(), f.big.as_slice());
    let across = audio(&f, ONE, "rec-b.wav", Some("bytes=60000-70000")).await;
    assert_eq!(across.status(), 206);
    assert_eq!(
        across.bytes().await.unwrap().as_ref(),
        &f.big[60000..=70000]
    );
    // The extension must be the recording's format.
    assert_eq!(audio(&f, ONE, "rec-a.mp3", None).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_recording_is_not_found() {
    let f = fixture().await;
    let two = Auth::Headers(TWO.0, TWO.1);
    let r = get(&f.vb, &format!("{}/Recording/rec-a/", base(TWO.0)), two).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(audio(&f, TWO, "rec-a.wav", None).await.status(), 404);
    let r = delete(&f.vb, &format!("{}/Recording/rec-a/", base(TWO.0)), two).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(f.rec_dir.join("rec-a.wav").exists());
    // The path's account must be the credentials' account.
    let r = get(&f.vb, &format!("{}/Recording/rec-a/", base(ONE.0)), two).await;
    assert_eq!(r.status, 401, "{}", r.text);
    // No credentials.
    let r = get(&f.vb, &format!("{}/Recording/", base(ONE.0)), Auth::None).await;
    assert_eq!(r.status, 401, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_recording_answers_204_and_removes_its_file() {
    let f = fixture().await;
    let one = Auth::Headers(ONE.0, ONE.1);
    let path = format!("{}/Recording/rec-a/", base(ONE.0));
    let r = delete(&f.vb, &path, one).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert!(!f.rec_dir.join("rec-a.wav").exists());
    assert!(f.rec_dir.join("rec-b.wav").exists());
    assert_eq!(get(&f.vb, &path, one).await.status, 404);
    assert_eq!(audio(&f, ONE, "rec-a.wav", None).await.status(), 404);
    assert_eq!(delete(&f.vb, &path, one).await.status, 404);
    let r = get(&f.vb, &format!("{}/Recording/", base(ONE.0)), one).await;
    assert_eq!(r.json["meta"]["total_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_recordings_of_a_call_that_is_not_live_is_404() {
    let f = fixture().await;
    let one = Auth::Headers(ONE.0, ONE.1);
    for path in ["Call/call-a/Record/", "Call/call-a/Record"] {
        let r = delete(&f.vb, &format!("{}/{path}", base(ONE.0)), one).await;
        assert_eq!(r.status, 404, "{}", r.text);
        assert!(
            r.json["error"].as_str().unwrap().contains("not live"),
            "{}",
            r.text
        );
    }
}
