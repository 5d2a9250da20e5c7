//! Node selectors of IP pools: the subset of Calico's selector language that
//! pools use in practice.
//!
//! Supported: `all()`, `has(k)`, `!has(k)`, `k == 'v'`, `k != 'v'`,
//! `k in {'a', 'b'}`, `k not in {...}`, joined by `&&` and `||` (`&&` binds
//! tighter; no parentheses). The empty selector means `all()`. Anything else
//! is refused with the position of the problem rather than guessed at.

use std::collections::BTreeMap;

/// A parsed selector: a disjunction of conjunctions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    any: Vec<Vec<Term>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    All,
    Has(String, bool),
    Eq(String, String, bool),
    In(String, Vec<String>, bool),
}

/// Why a selector does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector {selector:?} at byte {at}: {reason}")]
pub struct SelectorError {
    pub selector: String,
    pub at: usize,
    pub reason: &'static str,
}

impl Selector {
    pub fn parse(src: &str) -> Result<Selector, SelectorError> {
        let mut p = Parser { src, pos: 0 };
        let mut any = Vec::new();
        p.skip_ws();
        if p.at_end() {
            return Ok(Selector {
                any: vec![vec![Term::All]],
            });
        }
        loop {
            let mut all = vec![p.term()?];
            while p.eat("&&") {
                all.push(p.term()?);
            }
            any.push(all);
            if !p.eat("||") {
                break;
            }
        }
        p.skip_ws();
        if !p.at_end() {
            return Err(p.error("expected `&&`, `||` or the end"));
        }
        Ok(Selector { any })
    }

    /// Whether a node with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.any.iter().any(|all| {
            all.iter().all(|t| match t {
                Term::All => true,
                Term::Has(k, want) => labels.contains_key(k) == *want,
                Term::Eq(k, v, want) => (labels.get(k) == Some(v)) == *want,
                Term::In(k, vs, want) => labels.get(k).is_some_and(|v| vs.contains(v)) == *want,
            })
        })
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }
    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }
    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }
    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }
    fn error(&self, reason: &'static str) -> SelectorError {
        SelectorError {
            selector: self.src.to_string(),
            at: self.pos,
            reason,
        }
    }
    fn ident(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._-/".contains(c)))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error("expected a label name"));
        }
        let id = self.rest()[..len].to_string();
        self.pos += len;
        Ok(id)
    }
    fn string(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let quote = match self.rest().chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(self.error("expected a quoted value")),
        };
        let body = &self.rest()[1..];
        let Some(end) = body.find(quote) else {
            return Err(self.error("unterminated string"));
        };
        let value = body[..end].to_string();
        self.pos += end + 2;
        Ok(value)
    }
    fn term(&mut self) -> Result<Term, SelectorError> {
        if self.eat("all()") {
            return Ok(Term::All);
        }
        let negated = self.eat("!");
        if self.eat("has(") {
            let key = self.ident()?;
            if !self.eat(")") {
                return Err(self.error("expected `)`"));
            }
            return Ok(Term::Has(key, !negated));
        }
        if negated {
            return Err(self.error("`!` must be followed by has(...)"));
        }
        let key = self.ident()?;
        if self.eat("==") {
            return Ok(Term::Eq(key, self.string()?, true));
        }
        if self.eat("!=") {
            return Ok(Term::Eq(key, self.string()?, false));
        }
        let want = !self.eat("not ");
        if !self.eat("in") {
            return Err(self.error("expected `==`, `!=`, `in` or `not in`"));
        }
        if !self.eat("{") {
            return Err(self.error("expected `{`"));
        }
        let mut values = vec![self.string()?];
        while self.eat(",") {
            values.push(self.string()?);
        }
        if !self.eat("}") {
            return Err(self.error("expected `}`"));
        }
        Ok(Term::In(key, values, want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_like_calico() {
        let rack = labels(&[("rack", "r1"), ("zone", "a")]);
        let cases = [
            ("", true),
            ("all()", true),
            ("rack == 'r1'", true),
            ("rack == \"r2\"", false),
            ("rack != 'r2' && has(zone)", true),
            ("!has(zone)", false),
            ("zone in {'b', 'a'}", true),
            ("zone not in {'a'}", false),
            ("rack == 'r9' || zone == 'a'", true),
            ("kubernetes.io/hostname == 'x'", false),
        ];
        for (src, want) in cases {
            assert_eq!(Selector::parse(src).unwrap().matches(&rack), want, "{src}");
        }
    }

    #[test]
    fn malformed_selectors_are_refused_with_a_position() {
        for src in [
            "rack =",
            "rack == 'r1",
            "has(x",
            "!rack == 'a'",
            "all() all()",
            "x in {'a'",
        ] {
            let e = Selector::parse(src).unwrap_err();
            assert!(e.at <= src.len(), "{src}: {e}");
        }
    }
}
