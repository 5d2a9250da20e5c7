//! AS_PATH and AS4_PATH (RFC 4271 §4.3, §5.1.2; RFC 5065 §3; RFC 6793 §4).
//!
//! Owns the AS path segments (AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE,
//! AS_CONFED_SET) in their 2- and 4-octet encodings, the RFC 6793 §4.2.2
//! split of a 4-octet path into AS_PATH + AS4_PATH for a 2-octet session,
//! and the §4.2.3 reconstruction on receipt.
//!
//! ```text
//! +----------------+----------------+--------------------------+
//! | segment type   | segment length | segment value            |
//! | (1 octet)      | (1 octet: ASes)| (2 or 4 octets per AS)   |
//! +----------------+----------------+--------------------------+
//! ```

use crate::wire::error::{PResult, Short};
use crate::wire::open::AS_TRANS;

/// Path segment types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentType {
    /// 1: AS_SET, an unordered set of ASes (RFC 4271 §4.3).
    AsSet,
    /// 2: AS_SEQUENCE, an ordered set of ASes (RFC 4271 §4.3).
    AsSequence,
    /// 3: AS_CONFED_SEQUENCE (RFC 5065 §3).
    AsConfedSequence,
    /// 4: AS_CONFED_SET (RFC 5065 §3).
    AsConfedSet,
}

impl SegmentType {
    const fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Self::AsSet),
            2 => Some(Self::AsSequence),
            3 => Some(Self::AsConfedSequence),
            4 => Some(Self::AsConfedSet),
            _ => None,
        }
    }

    /// The segment type octet.
    pub const fn code(self) -> u8 {
        match self {
            Self::AsSet => 1,
            Self::AsSequence => 2,
            Self::AsConfedSequence => 3,
            Self::AsConfedSet => 4,
        }
    }

    /// Whether this is a confederation segment (RFC 5065).
    pub const fn is_confed(self) -> bool {
        matches!(self, Self::AsConfedSequence | Self::AsConfedSet)
    }
}

/// One path segment. `asns` is never empty on decode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    /// Segment type.
    pub kind: SegmentType,
    /// The AS numbers, 4-octet.
    pub asns: Vec<u32>,
}

/// An AS path: always in 4-octet AS numbers, whatever the session's
/// encoding. Segments longer than 255 ASes are split on encode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    /// The segments, first (most recently prepended) first.
    pub segments: Vec<Segment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty if `asns` is).
    pub fn sequence(asns: impl Into<Vec<u32>>) -> Self {
        let asns = asns.into();
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![Segment {
                kind: SegmentType::AsSequence,
                asns,
            }],
        }
    }

    /// The path length for route selection (RFC 4271 §9.1.2.2 a): an AS_SET
    /// counts 1, confederation segments count 0 (RFC 5065 §5.3).
    pub fn route_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::AsSequence => s.asns.len(),
                SegmentType::AsSet => 1,
                _ => 0,
            })
            .sum()
    }

    /// Whether any AS number needs four octets.
    pub(crate) fn needs_four_octets(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns.iter().any(|a| *a > u32::from(u16::MAX)))
    }

    /// Parses an AS_PATH or AS4_PATH value with `width`-octet AS numbers.
    /// Unknown segment types, empty segments and truncation are errors.
    pub(crate) fn parse(mut input: &[u8], width: usize) -> Result<Self, Short> {
        let mut segments = Vec::new();
        while !input.is_empty() {
            let (rest, seg) = parse_segment(input, width).map_err(|_| Short)?;
            segments.push(seg);
            input = rest;
        }
        Ok(Self { segments })
    }

    /// Appends the value with `width`-octet AS numbers; in 2-octet form an
    /// AS above 65535 is written as AS_TRANS (RFC 6793 §4.2.2). With
    /// `skip_confed`, confederation segments are left out (for AS4_PATH).
    pub(crate) fn emit(&self, width: usize, skip_confed: bool, out: &mut Vec<u8>) {
        for seg in &self.segments {
            if skip_confed && seg.kind.is_confed() {
                continue;
            }
            for chunk in seg.asns.chunks(255) {
                out.push(seg.kind.code());
                out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
                for asn in chunk {
                    if width == 4 {
                        out.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        let two = u16::try_from(*asn).unwrap_or(AS_TRANS);
                        out.extend_from_slice(&two.to_be_bytes());
                    }
                }
            }
        }
    }

    /// RFC 6793 §4.2.3: the AS path from a 2-octet AS_PATH and an AS4_PATH.
    /// Confederation segments in AS4_PATH are ignored (§6). If AS_PATH holds
    /// fewer ASes than AS4_PATH, AS4_PATH is ignored; otherwise the leading
    /// confederation segments of AS_PATH and then the leading part that
    /// AS4_PATH does not cover are kept, and AS4_PATH appended.
    pub(crate) fn reconstruct(as_path: AsPath, as4_path: AsPath) -> AsPath {
        let as4_segments: Vec<Segment> = as4_path
            .segments
            .into_iter()
            .filter(|s| !s.kind.is_confed())
            .collect();
        let as4 = AsPath {
            segments: as4_segments,
        };
        let (n, n4) = (as_path.route_len(), as4.route_len());
        if n < n4 {
            return as_path;
        }
        let mut need = n - n4;
        let mut segments = Vec::new();
        let mut leading = true;
        for seg in as_path.segments {
            // Leading confederation segments are never in AS4_PATH: keep
            // them. Past them, take only what AS4_PATH does not cover.
            if leading && seg.kind.is_confed() {
                segments.push(seg);
                continue;
            }
            leading = false;
            if need == 0 {
                break;
            }
            match seg.kind {
                SegmentType::AsSequence if seg.asns.len() > need => {
                    let asns = seg.asns.into_iter().take(need).collect();
                    segments.push(Segment {
                        kind: SegmentType::AsSequence,
                        asns,
                    });
                    need = 0;
                }
                SegmentType::AsSequence => {
                    need -= seg.asns.len();
                    segments.push(seg);
                }
                SegmentType::AsSet => {
                    need -= 1;
                    segments.push(seg);
                }
                SegmentType::AsConfedSequence | SegmentType::AsConfedSet => segments.push(seg),
            }
        }
        segments.extend(as4.segments);
        AsPath { segments }
    }
}

fn parse_segment(input: &[u8], width: usize) -> PResult<'_, Segment> {
    let fail = || nom::Err::Error(Short);
    let (&[kind, count], rest) = input.split_first_chunk::<2>().ok_or_else(fail)?;
    let kind = SegmentType::from_code(kind).ok_or_else(fail)?;
    if count == 0 {
        return Err(fail());
    }
    let (value, rest) = rest
        .split_at_checked(usize::from(count) * width)
        .ok_or_else(fail)?;
    let asns = if width == 4 {
        value
            .chunks_exact(4)
            .map(|c| c.iter().fold(0u32, |a, b| a << 8 | u32::from(*b)))
            .collect()
    } else {
        value
            .chunks_exact(2)
            .map(|c| c.iter().fold(0u32, |a, b| a << 8 | u32::from(*b)))
            .collect()
    };
    Ok((rest, Segment { kind, asns }))
}
