//! A snapshot file as an answer (`GET /backup`, `GET /cluster/snapshot`),
//! streamed from the open file: memory stays at one chunk per download
//! whatever the snapshot's size or the client's speed.
//!
//! The answer's `X-Numpool-Crc32` header needs the whole file's checksum
//! before the first byte goes out, so the file is read twice: once for the
//! checksum, then chunk by chunk as the client takes it. A snapshot file
//! never changes once renamed into place, and an open one stays readable
//! after a later snapshot removes it, so both readings see the same bytes.
//! Reads run on actix's blocking threads: a snapshot that is not in the
//! page cache must not stall an HTTP worker.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::{web, HttpResponse};

use super::error::ApiError;

/// Bytes read at a time, for the checksum and for the client.
const CHUNK: usize = 256 * 1024;

/// `file` (a whole snapshot) as a 200 answer with its length and CRC-32
/// (and, for a download, the file name to save it as). `context` starts
/// the 503's detail if the file cannot be read.
pub(crate) async fn snapshot_reply(
    file: File,
    file_name: Option<String>,
    context: &str,
) -> Result<HttpResponse, ApiError> {
    let unreadable = |e: io::Error| ApiError::Unavailable(format!("{context}: {e}"));
    let file = Arc::new(file);
    let (len, crc) = {
        let file = Arc::clone(&file);
        web::block(move || checksum(&file))
            .await
            .map_err(|e| unreadable(io::Error::other(e.to_string())))?
            .map_err(unreadable)?
    };
    let chunks = futures::stream::unfold(0u64, move |at| {
        let file = Arc::clone(&file);
        async move {
            if at >= len {
                return None;
            }
            let want = (len - at).min(CHUNK as u64) as usize;
            let read = web::block(move || read_chunk(&file, at, want))
                .await
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|r| r);
            // An error ends the answer short of its length: the client sees
            // a cut download (and the checksum says so).
            Some(match read {
                Ok(bytes) => (Ok(web::Bytes::from(bytes)), at + want as u64),
                Err(e) => (Err(e), len),
            })
        }
    });
    let mut reply = HttpResponse::Ok();
    reply
        .content_type("application/octet-stream")
        .insert_header((crate::cluster::peer::SNAPSHOT_CRC_HEADER, crc.to_string()));
    if let Some(name) = file_name {
        reply.insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ));
    }
    Ok(reply.body(SizedStream::new(len, chunks)))
}

/// The file's length and CRC-32, read a chunk at a time.
fn checksum(file: &File) -> io::Result<(u64, u32)> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    loop {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            return Ok((at, hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
}

/// `want` bytes of `file` from `at`: all of them, or an error.
fn read_chunk(file: &File, at: u64, want: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; want];
    file.read_exact_at(&mut bytes, at)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use std::io::Write;

    /// A file of `len` bytes that are not all alike.
    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        (f, bytes)
    }

    /// The answer's body, whole, and its CRC header.
    async fn fetched(file: File) -> (Vec<u8>, String, Option<u64>) {
        let reply = snapshot_reply(file, Some("b.bin".into()), "no")
            .await
            .unwrap();
        let crc = reply
            .headers()
            .get(crate::cluster::peer::SNAPSHOT_CRC_HEADER)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let body = reply.into_body();
        let size = match body.size() {
            actix_web::body::BodySize::Sized(n) => Some(n),
            _ => None,
        };
        let bytes = actix_web::body::to_bytes(body).await.unwrap();
        (bytes.to_vec(), crc, size)
    }

    #[actix_web::test]
    async fn a_file_arrives_whole_in_chunks_with_its_length_and_checksum() {
        // Around the chunk's size: empty, one byte, one short, exact, one
        // over, several.
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let (f, bytes) = file_of(len);
            let (body, crc, size) = fetched(f.reopen().unwrap()).await;
            assert_eq!(body, bytes, "{len} bytes");
            assert_eq!(size, Some(len as u64));
            assert_eq!(crc, crc32fast::hash(&bytes).to_string());
        }
    }

    #[actix_web::test]
    async fn an_open_file_removed_meanwhile_still_arrives_whole() {
        // A later snapshot removes older ones: a download under way keeps
        // its open file.
        let (f, bytes) = file_of(2 * CHUNK + 5);
        let open = f.reopen().unwrap();
        f.close().unwrap();
        let (body, _, _) = fetched(open).await;
        assert_eq!(body, bytes);
    }
}
