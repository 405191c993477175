//! OAuth request parameters: form bodies and query strings where every
//! parameter may appear at most once (RFC 6749 §3.1, §3.2).

use std::collections::BTreeMap;

/// Parameters by name; empty values count as absent, as RFC 6749 §3.1 says.
#[derive(Debug, Default)]
pub(crate) struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `a=1&b=2`; the error names a repeated parameter.
    pub(crate) fn parse(encoded: &[u8]) -> Result<Params, String> {
        let mut map = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(encoded) {
            if value.is_empty() {
                continue;
            }
            if map.insert(name.to_string(), value.to_string()).is_some() {
                return Err(format!("parameter `{name}` appears more than once"));
            }
        }
        Ok(Params(map))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_ignored() {
        let p = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
        assert!(Params::parse(b"a=1&a=2").unwrap_err().contains("`a`"));
    }
}
