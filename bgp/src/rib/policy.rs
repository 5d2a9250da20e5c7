//! Import and export policy as plain values: ordered rules that match
//! routes and modify or filter them (the "policy hook" of RFC 4271 §9.1.1
//! and §9.1.3; RFC 8212 requires one for every eBGP peer).
//!
//! Owns [`Policy`], [`Rule`], the matches ([`Match`], [`PrefixSet`] with
//! length ranges such as `10.0.0.0/8 le 26`) and the modifications
//! ([`Modify`]). Rules are tried in order; every rule whose matches all
//! hold applies its modifications, then its [`Disposition`] accepts,
//! rejects, or continues with the next rule. When no rule decides, the
//! policy's default does. Policies are data: the agent builds them from
//! IP pools and blocks, and tests compare them.

use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr;

use thiserror::Error;

use crate::wire::{Community, Family, LargeCommunity, NextHop, PathAttributes};

use super::prefix::IpPrefix;

/// A prefix and the lengths it matches: `prefix` itself and every more
/// specific prefix inside it whose length is in `min_len..=max_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixRange {
    /// The covering prefix.
    pub prefix: IpPrefix,
    /// Shortest matching length.
    pub min_len: u8,
    /// Longest matching length.
    pub max_len: u8,
}

impl PrefixRange {
    /// Exactly `prefix`.
    pub fn exact(prefix: IpPrefix) -> Self {
        let len = prefix.prefix_len();
        Self {
            prefix,
            min_len: len,
            max_len: len,
        }
    }

    /// `prefix` and everything inside it up to `max_len` (`le`).
    pub fn up_to(prefix: IpPrefix, max_len: u8) -> Self {
        Self {
            prefix,
            min_len: prefix.prefix_len(),
            max_len,
        }
    }

    /// Whether `p` is inside the range.
    pub fn matches(&self, p: &IpPrefix) -> bool {
        (self.min_len..=self.max_len).contains(&p.prefix_len()) && self.prefix.contains(p)
    }
}

/// A prefix range that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyParseError {
    /// The prefix part is not `addr/len` with zero host bits.
    #[error("bad prefix in {0:?}")]
    Prefix(String),
    /// `ge` / `le` is not followed by a length, or an unknown word.
    #[error("bad length range in {0:?}")]
    Range(String),
    /// The lengths are not `len <= ge <= le <= max`.
    #[error("empty or impossible length range in {0:?}")]
    Empty(String),
}

impl FromStr for PrefixRange {
    type Err = PolicyParseError;

    /// Parses `P`, `P le N`, `P ge M` or `P ge M le N` (BIRD/FRR style).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        let prefix: IpPrefix = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| PolicyParseError::Prefix(s.to_string()))?;
        let max = match prefix {
            IpPrefix::V4(_) => 32,
            IpPrefix::V6(_) => 128,
        };
        let len = prefix.prefix_len();
        let (mut ge, mut le) = (None, None);
        while let Some(w) = words.next() {
            let n: u8 = words
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| PolicyParseError::Range(s.to_string()))?;
            match w {
                "ge" if ge.is_none() => ge = Some(n),
                "le" if le.is_none() => le = Some(n),
                _ => return Err(PolicyParseError::Range(s.to_string())),
            }
        }
        let (min_len, max_len) = match (ge, le) {
            (None, None) => (len, len),
            (Some(g), None) => (g, max),
            (None, Some(l)) => (len, l),
            (Some(g), Some(l)) => (g, l),
        };
        if min_len < len || min_len > max_len || max_len > max {
            return Err(PolicyParseError::Empty(s.to_string()));
        }
        Ok(Self {
            prefix,
            min_len,
            max_len,
        })
    }
}

/// A set of prefix ranges; matches when any range does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefixSet(pub Vec<PrefixRange>);

impl PrefixSet {
    /// Whether any range matches `p`.
    pub fn matches(&self, p: &IpPrefix) -> bool {
        self.0.iter().any(|r| r.matches(p))
    }

    /// Parses each line as a [`PrefixRange`].
    pub fn parse<'a>(ranges: impl IntoIterator<Item = &'a str>) -> Result<Self, PolicyParseError> {
        ranges.into_iter().map(str::parse).collect()
    }
}

impl FromIterator<PrefixRange> for PrefixSet {
    fn from_iter<I: IntoIterator<Item = PrefixRange>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// A condition on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The prefix is in the set.
    Prefix(PrefixSet),
    /// The route carries the community (RFC 1997).
    Community(Community),
    /// The route carries the large community (RFC 8092).
    LargeCommunity(LargeCommunity),
    /// The prefix is of the family.
    Family(Family),
}

impl Match {
    fn holds(&self, prefix: &IpPrefix, attrs: &PathAttributes) -> bool {
        match self {
            Self::Prefix(set) => set.matches(prefix),
            Self::Community(c) => attrs.communities.contains(c),
            Self::LargeCommunity(c) => attrs.large_communities.contains(c),
            Self::Family(f) => prefix.family() == *f,
        }
    }
}

/// A change to an accepted route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modify {
    /// Set the next hop.
    NextHop(IpAddr),
    /// Set LOCAL_PREF.
    LocalPref(u32),
    /// Set MULTI_EXIT_DISC.
    Med(u32),
    /// Add a community (unless present).
    AddCommunity(Community),
    /// Remove a community.
    RemoveCommunity(Community),
    /// Add a large community.
    AddLargeCommunity(LargeCommunity),
    /// Remove a large community.
    RemoveLargeCommunity(LargeCommunity),
}

impl Modify {
    fn apply(&self, attrs: &mut Cow<'_, PathAttributes>, next_hop: &mut NextHop) {
        match self {
            Self::NextHop(IpAddr::V4(a)) => *next_hop = NextHop::V4(*a),
            Self::NextHop(IpAddr::V6(a)) => {
                *next_hop = NextHop::V6 {
                    global: *a,
                    link_local: None,
                }
            }
            Self::LocalPref(v) if attrs.local_pref != Some(*v) => {
                attrs.to_mut().local_pref = Some(*v)
            }
            Self::Med(v) if attrs.multi_exit_disc != Some(*v) => {
                attrs.to_mut().multi_exit_disc = Some(*v)
            }
            Self::AddCommunity(c) if !attrs.communities.contains(c) => {
                attrs.to_mut().communities.push(*c)
            }
            Self::RemoveCommunity(c) if attrs.communities.contains(c) => {
                attrs.to_mut().communities.retain(|x| x != c)
            }
            Self::AddLargeCommunity(c) if !attrs.large_communities.contains(c) => {
                attrs.to_mut().large_communities.push(*c)
            }
            Self::RemoveLargeCommunity(c) if attrs.large_communities.contains(c) => {
                attrs.to_mut().large_communities.retain(|x| x != c)
            }
            _ => {}
        }
    }
}

/// What a rule does after its modifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Accept the route.
    Accept,
    /// Reject the route.
    Reject,
    /// Go on with the next rule.
    Continue,
}

/// One rule: if every match holds, apply `set`, then `then`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// All must hold (none: always).
    pub matches: Vec<Match>,
    /// Modifications, in order.
    pub set: Vec<Modify>,
    /// What then.
    pub then: Disposition,
}

impl Rule {
    /// Accept routes whose prefix is in `set`.
    pub fn accept(set: PrefixSet) -> Self {
        Self {
            matches: vec![Match::Prefix(set)],
            set: Vec::new(),
            then: Disposition::Accept,
        }
    }

    /// Reject routes whose prefix is in `set`.
    pub fn reject(set: PrefixSet) -> Self {
        Self {
            matches: vec![Match::Prefix(set)],
            set: Vec::new(),
            then: Disposition::Reject,
        }
    }
}

/// An import or export policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// When no rule decides (`Continue` counts as `Reject`).
    pub default: Disposition,
}

impl Policy {
    /// Accepts everything unchanged (an explicit policy for RFC 8212).
    pub fn accept_all() -> Self {
        Self {
            rules: Vec::new(),
            default: Disposition::Accept,
        }
    }

    /// Rejects everything.
    pub fn reject_all() -> Self {
        Self {
            rules: Vec::new(),
            default: Disposition::Reject,
        }
    }

    /// Accepts only prefixes in `set`, unchanged.
    pub fn only(set: PrefixSet) -> Self {
        Self {
            rules: vec![Rule::accept(set)],
            default: Disposition::Reject,
        }
    }

    /// Runs the policy on a route: `true` if accepted, with `attrs` and
    /// `next_hop` as modified (`attrs` is copied only when a rule changes
    /// it).
    pub fn apply(
        &self,
        prefix: &IpPrefix,
        attrs: &mut Cow<'_, PathAttributes>,
        next_hop: &mut NextHop,
    ) -> bool {
        for rule in &self.rules {
            if !rule.matches.iter().all(|m| m.holds(prefix, attrs)) {
                continue;
            }
            for m in &rule.set {
                m.apply(attrs, next_hop);
            }
            match rule.then {
                Disposition::Accept => return true,
                Disposition::Reject => return false,
                Disposition::Continue => {}
            }
        }
        self.default == Disposition::Accept
    }
}
