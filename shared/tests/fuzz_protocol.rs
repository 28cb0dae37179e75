//! Fuzz target for the worker ⇄ child frame decoder (`protocol::read_frame`,
//! `protocol::read_message`): whatever a child writes on its socket, the
//! decoder returns frames, messages or a typed [`ProtocolError`], never
//! panics, and never allocates a buffer sized by a length prefix beyond the
//! limit.
//!
//! A counting global allocator (this test binary only) records the largest
//! single allocation and the peak of live bytes made on the test's own
//! thread, so other tests running in parallel threads do not disturb it.

mod fuzz_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use runeflow_shared::protocol::{
    ChildMessage, ErrorInfo, ExecutionResult, ProtocolError, encode, read_frame, read_message,
};
use tokio::io::{AsyncRead, ReadBuf};

// ---------------------------------------------------------------------------
// Allocation tracking (per thread)
// ---------------------------------------------------------------------------

struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
            let _ = LIVE.try_with(|live| {
                let now = live.get().saturating_add(size as isize);
                live.set(now);
                let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
            });
        }
    });
}

fn note_free(size: usize) {
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size as isize)));
        }
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping
// touches only const-initialised thread-locals without destructors, which
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Memory used by one measured call on this thread.
#[derive(Debug, Clone, Copy)]
struct Usage {
    largest: usize,
    peak_live: usize,
}

/// Runs `f` on this thread with allocation tracking on.
fn measured<T>(f: impl FnOnce() -> T) -> (T, Usage) {
    LARGEST.with(|l| l.set(0));
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    let usage = Usage {
        largest: LARGEST.with(Cell::get),
        peak_live: usize::try_from(PEAK.with(Cell::get)).unwrap_or(0),
    };
    (out, usage)
}

/// Bookkeeping allocations of the async plumbing, well below any frame we test.
const SMALL: usize = 4096;

// ---------------------------------------------------------------------------
// A reader that hands out its bytes in arbitrary pieces
// ---------------------------------------------------------------------------

/// An `AsyncRead` over `data` that returns at most `sizes[i]` bytes on its
/// i-th read (then everything), and `Pending` once before every odd read,
/// as a socket under load would.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    reads: usize,
    pending_next: bool,
}

impl Chunked {
    fn new(data: Vec<u8>, sizes: Vec<usize>) -> Self {
        Chunked {
            data,
            pos: 0,
            sizes,
            reads: 0,
            pending_next: false,
        }
    }
}

impl AsyncRead for Chunked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.pending_next {
            this.pending_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.pending_next = this.reads % 2 == 1;
        let want = this.sizes.get(this.reads).copied().unwrap_or(usize::MAX);
        this.reads += 1;
        let rest = this.data.get(this.pos..).unwrap_or_default();
        let n = rest.len().min(want.max(1)).min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}

// ---------------------------------------------------------------------------
// A reference model of the framing
// ---------------------------------------------------------------------------

/// What reading frames from `bytes` until the end or an error must give.
#[derive(Debug, PartialEq)]
enum Step {
    Frame(Vec<u8>),
    End,
    TooLarge(usize),
    Truncated,
}

fn model(bytes: &[u8], limit: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rest = bytes;
    loop {
        if rest.is_empty() {
            steps.push(Step::End);
            return steps;
        }
        let Some((header, body)) = rest.split_first_chunk::<4>() else {
            steps.push(Step::Truncated);
            return steps;
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len > limit {
            steps.push(Step::TooLarge(len));
            return steps;
        }
        let Some(frame) = body.get(..len) else {
            steps.push(Step::Truncated);
            return steps;
        };
        steps.push(Step::Frame(frame.to_vec()));
        rest = &body[len..];
    }
}

/// Reads frames as the worker does, until the end or the first error.
async fn read_all<R: AsyncRead + Unpin>(reader: &mut R, limit: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    loop {
        match read_frame(reader, limit).await {
            Ok(Some(frame)) => steps.push(Step::Frame(frame)),
            Ok(None) => {
                steps.push(Step::End);
                return steps;
            }
            Err(ProtocolError::TooLarge { len, limit: l }) => {
                assert_eq!(l, limit, "the error names the limit in force");
                steps.push(Step::TooLarge(len));
                return steps;
            }
            Err(ProtocolError::Truncated) => {
                steps.push(Step::Truncated);
                return steps;
            }
            Err(other) => panic!("an in-memory reader gave {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/// A frame header followed by some of the bytes it announces (or more).
fn framed_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 0..64),
            prop_oneof![Just(0i64), -3i64..=3],
        ),
        0..6,
    )
    .prop_map(|frames| {
        let mut out = Vec::new();
        for (body, skew) in frames {
            let len = (body.len() as i64 + skew).max(0) as u32;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&body);
        }
        out
    })
}

/// Any byte string, or one that is mostly well framed.
fn wire_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..300), framed_bytes()]
}

/// Text a child could send: any Unicode, NUL and control characters included.
fn child_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z_.\\x00\\n\\t\"\\\\é😀]{0,40}",
        Just(String::new()),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        child_text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(child_text(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn child_message() -> impl Strategy<Value = ChildMessage> {
    prop_oneof![
        child_text().prop_map(|name| ChildMessage::Find { name }),
        child_text().prop_map(|path| ChildMessage::Read { path }),
        child_text().prop_map(|dir| ChildMessage::List { dir }),
        child_text().prop_map(|text| ChildMessage::Log { text }),
        json_value().prop_map(|value| ChildMessage::Result(ExecutionResult::Success { value })),
        (child_text(), child_text(), prop::option::of(child_text())).prop_map(
            |(kind, message, traceback)| {
                ChildMessage::Result(ExecutionResult::Failed {
                    error: ErrorInfo {
                        kind,
                        message,
                        traceback,
                    },
                })
            }
        ),
    ]
}

/// One edit of a frame body: flip, insert, delete or truncate.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Cut(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Cut),
    ]
}

fn apply(body: &mut Vec<u8>, edit: &Edit) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *edit {
        Edit::Flip(i, b) if !body.is_empty() => {
            let i = at(i, body.len());
            body[i] ^= b | 1;
        }
        Edit::Insert(i, b) => {
            let i = at(i, body.len() + 1);
            body.insert(i, b);
        }
        Edit::Delete(i) if !body.is_empty() => {
            let i = at(i, body.len());
            body.remove(i);
        }
        Edit::Cut(i) => body.truncate(at(i, body.len() + 1)),
        _ => {}
    }
}

/// A frame body that is JSON-like but likely wrong: valid messages with
/// edits, invalid UTF-8, lone surrogates, deep nesting, unknown ops.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (child_message(), prop::collection::vec(edit(), 1..4)).prop_map(|(msg, edits)| {
            let mut body = serde_json::to_vec(&msg).expect("messages serialise");
            for e in &edits {
                apply(&mut body, e);
            }
            body
        }),
        prop::collection::vec(any::<u8>(), 0..64),
        (1usize..5000).prop_map(|depth| {
            let mut body = br#"{"op":"result","status":"success","value":"#.to_vec();
            body.extend(std::iter::repeat_n(b'[', depth));
            body.extend(std::iter::repeat_n(b']', depth));
            body.push(b'}');
            body
        }),
        "[\\x80-\\xff]{1,8}".prop_map(|s| {
            // Latin-1 bytes, not UTF-8, inside a string value.
            let mut body = br#"{"op":"log","text":""#.to_vec();
            body.extend(s.chars().map(|c| c as u32 as u8));
            body.extend(br#""}"#);
            body
        }),
        Just(br#"{"op":"log","text":"\ud800"}"#.to_vec()),
        Just(br#"{"op":"log","text":"\udc00\ud800"}"#.to_vec()),
        "[a-z_]{0,12}".prop_map(|op| format!(r#"{{"op":"{op}"}}"#).into_bytes()),
        Just(br#"{"op":"result","status":"success","value":1e999999}"#.to_vec()),
        Just(br#"{"op":"find","name":"a","name":"b"}"#.to_vec()),
    ]
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(fuzz_support::cases(256))]

    /// Arbitrary bytes read as frames give exactly what the framing rules
    /// say, whether they arrive at once or in arbitrary pieces.
    #[test]
    fn fuzz_frames_of_arbitrary_bytes_match_the_framing_rules(
        bytes in wire_bytes(),
        limit in prop_oneof![0usize..80, Just(16 * 1024 * 1024)],
        sizes in prop::collection::vec(0usize..9, 0..40),
    ) {
        let rt = runtime();
        let expected = model(&bytes, limit);
        let mut whole: &[u8] = &bytes;
        let at_once = rt.block_on(read_all(&mut whole, limit));
        prop_assert_eq!(&at_once, &expected);
        let mut pieces = Chunked::new(bytes.clone(), sizes);
        let in_pieces = rt.block_on(read_all(&mut pieces, limit));
        prop_assert_eq!(&in_pieces, &expected);
    }

    /// A length prefix over the limit is refused before anything is
    /// allocated for it; one within the limit never allocates more than the
    /// limit, even when the frame then ends early.
    #[test]
    fn fuzz_huge_length_prefixes_allocate_nothing_past_the_limit(
        len in prop_oneof![any::<u32>(), (u32::MAX - 16)..=u32::MAX, 0u32..(1 << 20)],
        limit in prop_oneof![Just(0usize), Just(1024), Just(1 << 20), Just(16 * 1024 * 1024)],
        tail in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let rt = runtime();
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        let mut reader: &[u8] = &bytes;
        let (result, usage) =
            measured(|| rt.block_on(read_message::<_, ChildMessage>(&mut reader, limit)));
        let len = len as usize;
        if len > limit {
            prop_assert!(
                matches!(result, Err(ProtocolError::TooLarge { len: l, limit: m }) if l == len && m == limit),
                "{:?}", result
            );
            prop_assert!(usage.largest < SMALL, "{usage:?} for a refused frame");
        } else {
            prop_assert!(usage.largest <= limit.max(SMALL), "{usage:?} with limit {limit}");
            prop_assert!(usage.peak_live <= limit + SMALL, "{usage:?} with limit {limit}");
            if tail.len() < len {
                prop_assert!(matches!(result, Err(ProtocolError::Truncated)), "{:?}", result);
            }
        }
    }

    /// Hostile frame bodies decode to a message or to `Malformed`, never a
    /// panic (deep nesting included: serde_json's recursion limit holds).
    #[test]
    fn fuzz_hostile_bodies_give_a_message_or_malformed(body in hostile_body()) {
        let rt = runtime();
        let bytes = frame(&body);
        let mut reader: &[u8] = &bytes;
        let limit = 1 << 20;
        match rt.block_on(read_message::<_, ChildMessage>(&mut reader, limit)) {
            Ok(Some(message)) => {
                // Whatever was accepted re-encodes to an equal message.
                let again = encode(&message).expect("an accepted message re-encodes");
                let mut r: &[u8] = &again;
                let back: ChildMessage = rt
                    .block_on(read_message(&mut r, usize::MAX))
                    .expect("its encoding decodes")
                    .expect("one message");
                prop_assert_eq!(
                    serde_json::to_value(&back).ok(),
                    serde_json::to_value(&message).ok()
                );
            }
            Ok(None) => prop_assert!(false, "a full frame is not the end of the stream"),
            Err(ProtocolError::Malformed(reason)) => prop_assert!(!reason.is_empty()),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    /// Every message a child can send survives framing and any chunking,
    /// several to a stream, and the stream then ends cleanly.
    #[test]
    fn fuzz_valid_messages_round_trip_through_any_chunking(
        messages in prop::collection::vec(child_message(), 1..5),
        sizes in prop::collection::vec(0usize..64, 0..64),
    ) {
        let rt = runtime();
        let mut bytes = Vec::new();
        for message in &messages {
            bytes.extend(encode(message).expect("messages encode"));
        }
        let mut reader = Chunked::new(bytes, sizes);
        for sent in &messages {
            let got: ChildMessage = rt
                .block_on(read_message(&mut reader, 1 << 20))
                .expect("a valid frame decodes")
                .expect("a message, not the end");
            prop_assert_eq!(serde_json::to_value(&got).ok(), serde_json::to_value(sent).ok());
        }
        let end = rt.block_on(read_message::<_, ChildMessage>(&mut reader, 1 << 20));
        prop_assert!(matches!(end, Ok(None)), "{:?}", end);
    }
}

/// Decoding is not free: a `result` value decodes to `serde_json::Value`,
/// 32 bytes per element plus vector growth, and a B-tree node per object:
/// a 1 MiB frame of `{"a":0},…` peaks at about 88× its size, `[0],…` at 49×,
/// `0,…` at 33× (largest single allocation 4-16×). With the default 16 MiB
/// frame limit one message can make the worker hold ~1.4 GB: the worker's
/// memory bound per execution must count this factor (or lower the frame
/// limit). This pins the factor, so a change that makes it worse is seen.
#[test]
fn decoded_result_memory_stays_within_128_times_the_frame() {
    let rt = runtime();
    for unit in ["[0]", "0", "{}", "\"\"", "[[]]", "{\"a\":0}"] {
        let n = (1 << 20) / (unit.len() + 1);
        let mut body = br#"{"op":"result","status":"success","value":["#.to_vec();
        for i in 0..n {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(unit.as_bytes());
        }
        body.extend_from_slice(b"]}");
        let bytes = frame(&body);
        let mut reader: &[u8] = &bytes;
        let (decoded, usage) =
            measured(|| rt.block_on(read_message::<_, ChildMessage>(&mut reader, 1 << 21)));
        assert!(
            matches!(decoded, Ok(Some(ChildMessage::Result(_)))),
            "{unit}"
        );
        assert!(
            usage.peak_live <= 128 * body.len() + SMALL,
            "{unit}: {usage:?} for a {} byte frame",
            body.len()
        );
    }
}
