//! Recordings the simulated switch makes: `record` (the caller, transcripts m, n, r, s)
//! and `record_session` (the whole call, transcript t).
//!
//! The switch writes a real file and so does the simulator: a canonical 44-byte RIFF/WAVE
//! header and 16-bit mono PCM silence at the channel's rate (8 kHz: the simulated channel
//! negotiates PCMU; the test switch's loopback profiles negotiate G722, 16 kHz). Its size is
//! what `record_file_size` says, `44 + 2 × record_samples`, as on the switch. The file is
//! written when the recording stops (its RECORD_STOP), so a reader that waits for that event
//! sees it complete, as on the switch. A file that cannot be written (no such directory) is
//! logged and the events go out anyway: the tests that read files give a directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Samples a second of the simulated channel (PCMU).
pub(crate) const RATE: u64 = 8000;

/// Where the switch puts a recording named `file`: relative names resolve to the
/// recordings directory (`$${recordings_dir}`), absolute paths and URLs stay as they are.
pub(crate) fn resolve(dir: &Path, file: &str) -> String {
    if file.starts_with('/') || file.contains("://") {
        file.to_string()
    } else {
        dir.join(file).to_string_lossy().into_owned()
    }
}

/// The record_* variables of a stopped recording of `ms` milliseconds.
pub(crate) struct Stopped {
    pub ms: u64,
    pub samples: u64,
    pub size: u64,
}

impl Stopped {
    pub fn of_ms(ms: u64) -> Stopped {
        let samples = ms * RATE / 1000;
        Stopped {
            ms,
            samples,
            size: 44 + samples * 2,
        }
    }
}

/// Writes `path` as a WAV file of `samples` samples of silence. A path the switch would
/// not write as a local file (a URL) is left alone.
pub(crate) fn write_wav(path: &str, samples: u64) {
    if path.contains("://") {
        return;
    }
    if let Err(e) = try_write_wav(Path::new(path), samples) {
        tracing::warn!(%path, error = %e, "sim: cannot write the recording");
    }
}

fn try_write_wav(path: &Path, samples: u64) -> std::io::Result<()> {
    let data = u32::try_from(samples * 2).unwrap_or(u32::MAX - 36);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&wav_header(data))?;
    let zeros = [0u8; 4096];
    let mut left = data as usize;
    while left > 0 {
        let n = left.min(zeros.len());
        f.write_all(&zeros[..n])?;
        left -= n;
    }
    f.flush()
}

/// The canonical 44-byte header of 16-bit mono PCM at [`RATE`] with `data` bytes.
fn wav_header(data: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let rate = RATE as u32;
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    h[32..34].copy_from_slice(&2u16.to_le_bytes()); // block align
    h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// How long a `record` with a time limit of `limit` runs when the limit ends it, started
/// at `start_us` (epoch µs). The switch checks `now - start > limit` on whole epoch
/// seconds, so the file runs past the limit by up to a second: 3660 ms for a limit of 3
/// in transcript r.
pub(crate) fn limit_run(limit: Duration, start_us: i64) -> Duration {
    let into_second = start_us.rem_euclid(1_000_000) as u64;
    limit + Duration::from_micros(1_000_000 - into_second)
}

/// A `record_session` in progress: a media bug that outlives the app.
#[derive(Debug)]
pub(crate) struct SessionRecording {
    pub path: String,
    pub started_us: i64,
}

/// `record <path> [<time_limit_secs>] [<silence_thresh>] [<silence_hits>]`.
#[derive(Debug)]
pub(crate) struct RecordArgs {
    /// Absolute: relative paths resolve to the recordings directory, as on the switch.
    pub path: String,
    /// `None`: no limit and no silence detection, until something stops it.
    pub length: Option<Duration>,
    pub by_silence: bool,
}

impl RecordArgs {
    /// `silence_after`: when the caller's silence ends a silence-detecting record
    /// (scripted); `start_us`: when it starts (the limit is counted in epoch seconds).
    pub fn parse(arg: &str, dir: &Path, silence_after: Duration, start_us: i64) -> RecordArgs {
        let mut words = arg.split_whitespace();
        let path = resolve(dir, words.next().unwrap_or(""));
        let limit = words
            .next()
            .and_then(|w| w.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(|s| limit_run(Duration::from_secs(s), start_us));
        let thresh = words
            .next()
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or(0);
        let by_silence = thresh > 0 && limit.is_none_or(|l| silence_after < l);
        let length = if by_silence {
            Some(silence_after)
        } else {
            limit
        };
        RecordArgs {
            path,
            length,
            by_silence,
        }
    }
}

/// The default recordings directory of a FreeSWITCH install.
pub(crate) fn default_dir() -> PathBuf {
    PathBuf::from("/usr/local/freeswitch/recordings")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_file_has_the_size_the_switch_reports() {
        let path = std::env::temp_dir().join(format!("sim-{}.wav", uuid::Uuid::new_v4()));
        let stopped = Stopped::of_ms(1500);
        write_wav(path.to_str().unwrap(), stopped.samples);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(bytes.len() as u64, stopped.size);
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().unwrap()), 24000);
        // 1.5 s × 8000 × 2
    }

    #[test]
    fn the_limit_runs_to_the_next_whole_second() {
        // Started 0.34 s into a second: a limit of 3 ends 3.66 s later (transcript r).
        let d = limit_run(Duration::from_secs(3), 1_700_000_000_340_000);
        assert_eq!(d, Duration::from_millis(3660));
    }
}
