//! http(s) media for `Play` on Asterisk: the switch has no HTTP media cache (FreeSWITCH
//! has `http_cache://`), so voxbridge fetches the file once into `[asterisk]
//! media_cache_dir` and hands `Playback` the local path. Asterisk must be able to read that
//! directory (same host, or a shared mount at the same path).
//!
//! - The file is named by the SHA-256 of the URL plus its extension: one download per URL,
//!   shared by every call; a second call plays the cached file without a request.
//! - Only formats Asterisk plays without a transcoding step are accepted, by the URL's
//!   extension: `.wav` (8/16 kHz 16-bit mono PCM), `.gsm`, `.ulaw`, `.alaw`, `.sln`/`.slin`.
//!   Anything else is refused with the reason (no silent skip).
//! - Limits: 10 s for the request, [`MAX_MEDIA_BYTES`] per file; a download goes to a
//!   temporary name and is renamed into place when complete, so a half-written file is
//!   never played.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest media file fetched.
pub const MAX_MEDIA_BYTES: usize = 20 * 1024 * 1024;

const PLAYABLE: &[&str] = &["wav", "gsm", "ulaw", "alaw", "sln", "slin"];

#[derive(Clone, Debug)]
pub struct MediaCache {
    dir: PathBuf,
    client: reqwest::Client,
}

impl MediaCache {
    pub fn new(dir: &str) -> anyhow::Result<MediaCache> {
        let dir = std::path::absolute(Path::new(dir))?;
        let client = crate::http_client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(MediaCache { dir, client })
    }

    /// The local path (without extension, as `Playback` wants it) of the media at `url`,
    /// fetched if it is not cached yet.
    pub async fn local(&self, url: &str) -> Result<String, String> {
        let ext = extension(url)?;
        let key = hex::encode(Sha256::digest(url.as_bytes()));
        let stem = self.dir.join(&key);
        let file = stem.with_extension(&ext);
        if tokio::fs::metadata(&file).await.is_ok() {
            return Ok(stem.display().to_string());
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| format!("media cache {}: {e}", self.dir.display()))?;
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("fetching media {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!(
                "fetching media {url}: HTTP {}",
                resp.status().as_u16()
            ));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_MEDIA_BYTES as u64)
        {
            return Err(format!(
                "media {url} is larger than {MAX_MEDIA_BYTES} bytes"
            ));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("fetching media {url}: {e}"))?;
        if body.len() > MAX_MEDIA_BYTES {
            return Err(format!(
                "media {url} is larger than {MAX_MEDIA_BYTES} bytes"
            ));
        }
        let tmp = self
            .dir
            .join(format!(".{key}.{}.part", uuid::Uuid::new_v4()));
        tokio::fs::write(&tmp, &body)
            .await
            .map_err(|e| format!("writing media {}: {e}", tmp.display()))?;
        tokio::fs::rename(&tmp, &file)
            .await
            .map_err(|e| format!("caching media {}: {e}", file.display()))?;
        tracing::info!(url, file = %file.display(), bytes = body.len(), "media cached for Asterisk");
        Ok(stem.display().to_string())
    }
}

/// The URL path's extension, if Asterisk can play it as is.
fn extension(url: &str) -> Result<String, String> {
    let path = url::Url::parse(url)
        .map_err(|e| format!("Play {url}: not a URL ({e})"))?
        .path()
        .to_string();
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.contains('/'))
        .unwrap_or_default();
    if PLAYABLE.contains(&ext.as_str()) {
        Ok(ext)
    } else {
        Err(format!(
            "not supported yet on Asterisk: Play of {url} (Asterisk plays .wav/.gsm/.ulaw/.alaw/.sln as fetched; other formats would need transcoding)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_formats_asterisk_plays_as_is() {
        assert_eq!(extension("https://x.test/a/b.WAV?x=1").unwrap(), "wav");
        assert_eq!(extension("http://x.test/b.gsm").unwrap(), "gsm");
        assert!(extension("https://x.test/b.mp3")
            .unwrap_err()
            .contains("not supported yet"));
        assert!(extension("https://x.test/dir.wav/file").is_err());
        assert!(extension("not a url").is_err());
    }
}
