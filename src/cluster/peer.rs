//! Requests from one node to another over plain HTTP/1.1: a standby
//! forwarding the API to its leader, a node fetching its leader's snapshot.
//! One request per connection; the answer is read whole.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A request to another node: method, path with query, headers, body.
pub(crate) struct Request {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A node's answer: status, content type, `Retry-After`, body.
pub(crate) type Answer = (u16, Option<String>, Option<String>, Vec<u8>);

/// Sends `r` to the node at `node` (`http://host:port`) and reads its
/// answer, waiting at most `timeout` between reads.
pub(crate) fn exchange(node: &str, r: &Request, timeout: Duration) -> std::io::Result<Answer> {
    let host = node
        .strip_prefix("http://")
        .unwrap_or(node)
        .trim_end_matches('/');
    let addr = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        r.method,
        r.path_and_query,
        r.body.len()
    );
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&r.body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

/// Reads an HTTP/1.1 response (Content-Length, chunked, or to the end).
fn parse(raw: &[u8]) -> std::io::Result<Answer> {
    let bad = || std::io::Error::other("malformed answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad())?;
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let (mut content_type, mut retry_after, mut chunked, mut length) = (None, None, false, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = Some(value),
            "retry-after" => retry_after = Some(value),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-length" => length = value.parse::<usize>().ok(),
            _ => {}
        }
    }
    let body = if chunked {
        let mut out = Vec::new();
        loop {
            let end = body.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
            let size = usize::from_str_radix(
                std::str::from_utf8(&body[..end])
                    .map_err(|_| bad())?
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )
            .map_err(|_| bad())?;
            body = &body[end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(body.get(..size).ok_or_else(bad)?);
            body = body.get(size + 2..).ok_or_else(bad)?;
        }
        out
    } else {
        match length {
            Some(n) => body.get(..n).ok_or_else(bad)?.to_vec(),
            None => body.to_vec(),
        }
    };
    Ok((status, content_type, retry_after, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_whole() {
        let plain = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let (status, kind, _, body) = parse(plain).unwrap();
        assert_eq!(
            (status, kind.as_deref(), body.as_slice()),
            (201, Some("application/json"), &b"{}"[..])
        );
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let (status, _, retry, body) = parse(chunked).unwrap();
        assert_eq!(
            (status, retry.as_deref(), body.as_slice()),
            (503, Some("1"), &b"abcde"[..])
        );
        assert!(parse(b"garbage").is_err());
    }
}
