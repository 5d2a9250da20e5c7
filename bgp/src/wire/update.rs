//! The UPDATE message (RFC 4271 §4.3) and its RFC 7606 outcome.
//!
//! Owns the three fields of an UPDATE (Withdrawn Routes, Path Attributes,
//! NLRI), the checks that span them (RFC 4271 §6.3 lengths, missing
//! well-known mandatory attributes, RFC 7606 §3 d), End-of-RIB (RFC 4724
//! §2) and the treat-as-withdraw rewrite.
//!
//! **Treat-as-withdraw representation.** When any error calls for
//! treat-as-withdraw (RFC 7606 §2), the decoder still returns an [`Update`],
//! rewritten so that a RIB can apply it as it stands: every IPv4 unicast
//! prefix it carried (Withdrawn Routes, NLRI, MP_REACH_NLRI and
//! MP_UNREACH_NLRI of AFI 1/SAFI 1) is in `withdrawn`, every IPv6 unicast
//! prefix (MP_REACH_NLRI and MP_UNREACH_NLRI) is in an
//! `attributes.mp_unreach` of IPv6 unicast, and every other attribute is
//! cleared. The errors are returned beside it in
//! [`crate::wire::Received::errors`]. Attribute-discard errors leave the
//! UPDATE as it is, minus the discarded attribute.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```

use super::attribute::decode::decode_attributes;
use super::attribute::mp::{MpReach, MpUnreach};
use super::attribute::{PathAttributes, type_code};
use super::context::{Context, Family};
use super::error::{Action, AttributeError, EncodeError, UpdateError};
use super::nlri::{Ipv4Prefix, Nlri, emit_nlri, parse_nlri};

/// An UPDATE message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Update {
    /// Withdrawn Routes (IPv4 unicast).
    pub withdrawn: Vec<Nlri<Ipv4Prefix>>,
    /// Path Attributes, including MP_REACH_NLRI / MP_UNREACH_NLRI.
    pub attributes: PathAttributes,
    /// Network Layer Reachability Information (IPv4 unicast).
    pub nlri: Vec<Nlri<Ipv4Prefix>>,
}

impl Update {
    /// The End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE
    /// for IPv4 unicast, an UPDATE holding only an empty MP_UNREACH_NLRI
    /// otherwise.
    pub fn end_of_rib(family: Family) -> Self {
        let mut u = Self::default();
        if family == Family::Ipv6Unicast {
            u.attributes.mp_unreach = Some(MpUnreach::Ipv6Unicast(Vec::new()));
        }
        u
    }

    /// The family this UPDATE marks End-of-RIB for, if it is one.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        let only_unreach = PathAttributes {
            mp_unreach: self.attributes.mp_unreach.clone(),
            ..PathAttributes::default()
        };
        if self.attributes != only_unreach {
            return None;
        }
        match &self.attributes.mp_unreach {
            None => Some(Family::Ipv4Unicast),
            Some(MpUnreach::Ipv4Unicast(v)) if v.is_empty() => Some(Family::Ipv4Unicast),
            Some(MpUnreach::Ipv6Unicast(v)) if v.is_empty() => Some(Family::Ipv6Unicast),
            Some(_) => None,
        }
    }

    /// Parses the body of an UPDATE. Session-reset errors are `Err`; RFC
    /// 7606 errors that keep the session are appended to `errors`, and the
    /// UPDATE is rewritten as described in the module docs when any of them
    /// is treat-as-withdraw.
    pub(crate) fn parse(
        body: &[u8],
        ctx: &Context,
        errors: &mut Vec<AttributeError>,
    ) -> Result<Self, UpdateError> {
        let (withdrawn, rest) = split_length_prefixed(body)?;
        let (attr_block, nlri) = split_length_prefixed(rest)?;
        let mut update = Update::default();
        decode_attributes(
            attr_block,
            ctx,
            !nlri.is_empty(),
            &mut update.attributes,
            errors,
        )?;
        let v4_add_path = ctx.add_path_receive(Family::Ipv4Unicast);
        parse_nlri(withdrawn, v4_add_path, &mut update.withdrawn)?;
        parse_nlri(nlri, v4_add_path, &mut update.nlri)?;
        let withdraw = |e: &AttributeError| e.action == Action::TreatAsWithdraw;
        if !errors.iter().any(withdraw)
            && let Some(type_code) = update.missing_mandatory()
        {
            // RFC 7606 §3 d: a missing well-known mandatory attribute.
            errors.push(AttributeError {
                error: UpdateError::MissingWellKnownAttribute { type_code },
                action: Action::TreatAsWithdraw,
            });
        }
        if errors.iter().any(withdraw) {
            update.treat_as_withdraw();
        }
        Ok(update)
    }

    /// The first well-known mandatory attribute missing for the NLRI this
    /// UPDATE carries (RFC 4271 §5; NEXT_HOP only for the NLRI field,
    /// RFC 4760 §3).
    fn missing_mandatory(&self) -> Option<u8> {
        let a = &self.attributes;
        let v4 = !self.nlri.is_empty();
        let mp = a.mp_reach.as_ref().is_some_and(MpReach::has_nlri);
        if !v4 && !mp {
            return None;
        }
        if a.origin.is_none() {
            return Some(type_code::ORIGIN);
        }
        if a.as_path.is_none() {
            return Some(type_code::AS_PATH);
        }
        if v4 && a.next_hop.is_none() {
            return Some(type_code::NEXT_HOP);
        }
        None
    }

    /// Rewrites the UPDATE into withdrawals only (see the module docs).
    fn treat_as_withdraw(&mut self) {
        let attrs = std::mem::take(&mut self.attributes);
        self.withdrawn.append(&mut self.nlri);
        let mut v6 = Vec::new();
        match attrs.mp_reach {
            Some(MpReach::Ipv4Unicast { nlri, .. }) => self.withdrawn.extend(nlri),
            Some(MpReach::Ipv6Unicast { nlri, .. }) => v6.extend(nlri),
            Some(MpReach::Other { .. }) | None => {}
        }
        match attrs.mp_unreach {
            Some(MpUnreach::Ipv4Unicast(nlri)) => self.withdrawn.extend(nlri),
            Some(MpUnreach::Ipv6Unicast(nlri)) => v6.extend(nlri),
            Some(MpUnreach::Other { .. }) | None => {}
        }
        if !v6.is_empty() {
            self.attributes.mp_unreach = Some(MpUnreach::Ipv6Unicast(v6));
        }
    }

    /// Appends the body of this UPDATE.
    pub(crate) fn emit(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let v4_add_path = ctx.add_path_send(Family::Ipv4Unicast);
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        emit_nlri(&self.withdrawn, v4_add_path, out);
        patch_length(out, at)?;
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        self.attributes.emit(ctx, out)?;
        patch_length(out, at)?;
        emit_nlri(&self.nlri, v4_add_path, out);
        Ok(())
    }
}

/// Splits a 2-octet-length-prefixed field; an overrun is 3/1 (RFC 4271
/// §6.3).
fn split_length_prefixed(input: &[u8]) -> Result<(&[u8], &[u8]), UpdateError> {
    let (len, rest) = input
        .split_first_chunk::<2>()
        .ok_or(UpdateError::MalformedAttributeList)?;
    rest.split_at_checked(usize::from(u16::from_be_bytes(*len)))
        .ok_or(UpdateError::MalformedAttributeList)
}

/// Writes the length of the field that follows the 2-octet slot at `at`.
fn patch_length(out: &mut [u8], at: usize) -> Result<(), EncodeError> {
    let len = out.len().saturating_sub(at + 2);
    let too_long = EncodeError::MessageTooLong {
        length: len,
        max: usize::from(u16::MAX),
    };
    let field = u16::try_from(len).map_err(|_| too_long.clone())?;
    out.get_mut(at..at + 2)
        .ok_or(too_long)?
        .copy_from_slice(&field.to_be_bytes());
    Ok(())
}
