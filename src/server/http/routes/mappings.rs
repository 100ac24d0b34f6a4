//! Sticky mappings (extension): list, get, pin, break.

use actix_web::{web, HttpRequest, HttpResponse};

use super::profiles::path_profile;
use super::{data, list as page_of, AppState, Authed};
use crate::server::http::body::{self, Page, Query};
use crate::server::http::error::ApiError;
use crate::server::http::history::{HistoryReader, Line};
use crate::server::http::requests::PinBody;
use crate::server::http::views;
use crate::ProfileId;
use crate::{MappingCursor, MappingPage, PhoneNumber};

/// The profile and the recipient a path names (`.../{id}/.../{to}`).
pub(super) fn mapping_path(
    path: web::Path<(String, String)>,
) -> Result<(ProfileId, PhoneNumber), ApiError> {
    let (id, to) = path.into_inner();
    let profile = path_profile(&id)?;
    let to = PhoneNumber::parse_e164(&body::decode_plus(&to))
        .map_err(|e| ApiError::path_number("{to}", e))?;
    Ok((profile, to))
}

fn not_mapped(to: PhoneNumber) -> ApiError {
    ApiError::NotFound(format!("no sticky mapping for {to}"))
}

pub(super) async fn list(
    _: Authed,
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let profile = path_profile(&id)?;
    let query = Query::parse(req.query_string());
    let page = Page::from_query(&query)?;
    let sender = match query.get("filter[sender]") {
        None => None,
        Some(raw) => Some(body::query_number(raw).ok_or_else(|| {
            ApiError::parameter_number("filter[sender]", crate::NumberError::NotASender)
        })?),
    };
    // A page costs the page: `page[after]` (the `next_page_after` of the
    // page before) goes straight there; `page[number]` N walks N-1 pages
    // first, one lock hold each, letting this worker serve others between.
    let mut after = match query.get("page[after]") {
        None => None,
        Some(raw) => Some(raw.parse::<MappingCursor>().map_err(|_| {
            ApiError::invalid_parameter("page[after]", "not a cursor this server gave out")
        })?),
    };
    let skip = if after.is_some() { 0 } else { page.number - 1 };
    let mut current = state
        .engine
        .mappings_page(profile, after, page.size, sender)
        .await?;
    for _ in 0..skip {
        let Some(next) = current.next else {
            current.mappings.clear();
            break;
        };
        after = Some(next);
        crate::engine::yield_now().await;
        current = state
            .engine
            .mappings_page(profile, after, page.size, sender)
            .await?;
    }
    let stored = state.engine.profile_stats(profile).await?.stored_mappings;
    let mut meta = page.meta(stored);
    meta.next_page_after = Some(current.next.map(|c| c.to_string()));
    let items = current.mappings.iter().map(views::mapping).collect();
    Ok(page_of(items, meta))
}

/// Mappings an export reads at a time: one hold of the profile, and one
/// stretch of the HTTP worker, each. 4,096 ran 7% faster but about
/// doubled a one-message client's p99 during the export against 1,024 in
/// the same runs (`cargo bench --bench import`).
const EXPORT_PAGE: usize = 1024;

/// `GET .../sticky_mappings/export`: every live mapping as NDJSON (the
/// mapping record a line), streamed a page at a time as the client reads:
/// memory stays at one page whatever the profile's size, and the profile
/// is held for one page at a time, so sends go on meanwhile. An error
/// after the first page (the profile deleted meanwhile, say) ends the
/// stream with one line holding the error envelope.
pub(super) async fn export(
    _: Authed,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let profile = path_profile(&id)?;
    // The first page before the answer starts: a refusal is a plain error.
    let first = state
        .engine
        .mappings_page(profile, None, EXPORT_PAGE, None)
        .await?;
    let engine = state.engine.clone();
    let start: Option<Result<MappingPage, crate::Error>> = Some(Ok(first));
    let pages = futures::stream::unfold(start, move |next| {
        let engine = engine.clone();
        async move {
            let page = next?;
            let (text, then) = match page {
                Ok(page) => {
                    let text = export_lines(&page.mappings);
                    let then = match page.next {
                        Some(after) => {
                            crate::engine::yield_now().await;
                            Some(
                                engine
                                    .mappings_page(profile, Some(after), EXPORT_PAGE, None)
                                    .await,
                            )
                        }
                        None => None,
                    };
                    (text, then)
                }
                Err(e) => (error_line(e.into()).into_bytes(), None),
            };
            let chunk = Ok::<_, actix_web::Error>(web::Bytes::from(text));
            Some((chunk, then))
        }
    });
    Ok(HttpResponse::Ok().content_type(NDJSON).streaming(pages))
}

/// The longest line of an import, in bytes.
const MAX_LINE: usize = 64 * 1024;
/// Lines an import reads before it lets its worker serve others.
const YIELD_EVERY: u64 = 64;
/// How many bad lines an import's answer reports.
const REPORTED_LINES: usize = 10;

/// `POST .../sticky_mappings/import`: message history (NDJSON or CSV), read
/// as it arrives, a line at a time, and applied a batch at a time (see
/// [`crate::Importer`]): memory holds one line, one batch, and one entry a
/// recipient, whatever the body's length.
pub(super) async fn import(
    _: Authed,
    id: web::Path<String>,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    use futures::StreamExt;
    let profile = path_profile(&id)?;
    let mut importer = match state.engine.import_history(profile).await {
        Err(crate::Error::Pin(crate::PinError::StickyOff)) => {
            return Err(ApiError::Refused {
                code: crate::server::http::error::code::BAD_REQUEST,
                title: "Bad Request",
                detail: "the profile's sticky_sender is off: there is no map to import into".into(),
            })
        }
        other => other?,
    };
    let mut reader = HistoryReader::default();
    let mut report = ImportReply::default();
    let mut line: Vec<u8> = Vec::new();
    let mut number = 0u64;
    let mut too_long = false;
    let mut finished = false;
    while !finished {
        let chunk = match payload.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                // The whole lines received are imported (a prefix of the
                // file maps as the file would up to there); the line cut
                // short is dropped, never read as a row.
                let counts = importer.finish().await?;
                return Err(ApiError::bad_request(
                    "/",
                    format!("the upload broke off after line {number} ({e}): lines 1 to {number} were imported ({} mapped), the line cut short was not; the same import run again finishes it", counts.mapped),
                ));
            }
            None => {
                finished = true;
                web::Bytes::new()
            }
        };
        let mut rest: &[u8] = &chunk;
        loop {
            let (piece, end) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], true),
                None if finished && !line.is_empty() => (rest, true),
                None => (rest, false),
            };
            if line.len() + piece.len() > MAX_LINE {
                too_long = true;
            } else if !too_long {
                line.extend_from_slice(piece);
            }
            if !end {
                break;
            }
            number += 1;
            // Parsing is the handler's own work on a shared HTTP worker:
            // let the worker's other requests (sends) in now and then.
            if number.is_multiple_of(YIELD_EVERY) {
                crate::engine::yield_now().await;
            }
            let read = if too_long {
                Err(format!("longer than {MAX_LINE} bytes"))
            } else {
                std::str::from_utf8(&line)
                    .map_err(|_| "not UTF-8".to_string())
                    .and_then(|text| reader.line(text))
            };
            match read {
                Ok(Line::Row(row)) => {
                    if row.sent_at > importer.now() {
                        report.note(number, "sent after now".into());
                    }
                    importer.push(row).await?
                }
                Ok(Line::Inbound) => report.inbound += 1,
                Ok(Line::Nothing) => {}
                Err(why) => {
                    importer.malformed();
                    report.note(number, why);
                }
            }
            line.clear();
            too_long = false;
            if piece.len() >= rest.len() {
                break;
            }
            rest = &rest[piece.len() + 1..];
            if rest.is_empty() {
                break;
            }
        }
    }
    let counts = importer.finish().await?;
    Ok(data(report.with(counts)))
}

/// What an import answers.
#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub(super) struct ImportReply {
    /// Lines with a message (malformed and inbound ones included).
    pub rows: u64,
    /// Recipients mapped to the sender of their latest message.
    pub mapped: u64,
    /// Recipients whose mapping at least as recent (or pinned) was kept.
    pub kept_existing: u64,
    /// Rows skipped, by reason.
    pub skipped: ImportSkips,
    /// The first bad lines, with their numbers (from 1, the header
    /// included).
    pub errors: Vec<LineError>,
    #[serde(skip)]
    inbound: u64,
}

/// Why rows of an import did not map.
#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub(super) struct ImportSkips {
    /// Unreadable lines, numbers that are not phone numbers, bad or future times.
    pub malformed: u64,
    /// Recipients whose latest message is older than the sticky ttl.
    pub expired: u64,
    /// Recipients whose latest message's sender is not in the pool.
    pub not_in_pool: u64,
    /// Messages older than a later one to the same recipient.
    pub superseded: u64,
    /// Inbound messages (a recipient texting a pool number).
    pub inbound: u64,
}

/// A bad line of an import.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(super) struct LineError {
    /// Its number, from 1.
    pub line: u64,
    /// What is wrong with it.
    pub detail: String,
}

impl ImportReply {
    fn note(&mut self, line: u64, detail: String) {
        if self.errors.len() < REPORTED_LINES {
            self.errors.push(LineError { line, detail });
        }
    }

    fn with(mut self, counts: crate::ImportReport) -> Self {
        self.rows = counts.rows + self.inbound;
        self.mapped = counts.mapped;
        self.kept_existing = counts.kept_existing;
        self.skipped = ImportSkips {
            malformed: counts.malformed,
            expired: counts.expired,
            not_in_pool: counts.not_in_pool,
            superseded: counts.superseded,
            inbound: self.inbound,
        };
        self
    }
}

/// The media type of an export.
pub(super) const NDJSON: &str = "application/x-ndjson";

/// One NDJSON line per mapping.
fn export_lines(mappings: &[crate::StickyMapping]) -> Vec<u8> {
    // A line is about 210 bytes.
    let mut text = Vec::with_capacity(mappings.len() * 224);
    for m in mappings {
        // Writing to a `Vec` fails only on a value that cannot be JSON,
        // which a mapping always can; a line that did is taken back.
        let start = text.len();
        match serde_json::to_writer(&mut text, &views::mapping(m)) {
            Ok(()) => text.push(b'\n'),
            Err(_) => text.truncate(start),
        }
    }
    text
}

/// The error envelope as the last line of a stream.
fn error_line(e: ApiError) -> String {
    let mut line = serde_json::to_string(&e.envelope()).unwrap_or_default();
    line.push('\n');
    line
}

pub(super) async fn get(
    _: Authed,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (profile, to) = mapping_path(path)?;
    let m = state
        .engine
        .mapping(profile, to)
        .await?
        .ok_or_else(|| not_mapped(to))?;
    Ok(data(views::mapping(&m)))
}

pub(super) async fn pin(
    _: Authed,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (profile, to) = mapping_path(path)?;
    state.engine.profile(profile)?;
    let bytes = body::read(payload, state.body_limit).await?;
    let b: PinBody = body::json(&bytes)?;
    let from_raw = b.from.ok_or_else(|| ApiError::missing("/from"))?;
    let from = PhoneNumber::parse_sender(&from_raw).map_err(|e| ApiError::number("/from", e))?;
    let m = state.engine.pin(profile, to, from).await?;
    Ok(data(views::mapping(&m)))
}

pub(super) async fn delete(
    _: Authed,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (profile, to) = mapping_path(path)?;
    let m = state
        .engine
        .unmap(profile, to)
        .await?
        .ok_or_else(|| not_mapped(to))?;
    Ok(data(views::mapping(&m)))
}
