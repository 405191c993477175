//! RFC 8707 resource indicators: which presented values name the MCP endpoint.

use url::Url;

use crate::config::PublicUrl;

/// This broker's canonical MCP resource: the `/mcp` endpoint under its public URL.
pub(crate) fn mcp_resource(public_url: &PublicUrl) -> String {
    public_url.join("/mcp")
}

/// True if `presented` names this broker's MCP endpoint (see [`is_mcp_resource`]).
pub(crate) fn is_this_mcp(public_url: &PublicUrl, presented: &str) -> bool {
    is_mcp_resource(presented, &mcp_resource(public_url))
}

/// True if `presented` names the canonical MCP resource. Scheme and host compare
/// case-insensitively (URL parsing lowercases them), a trailing slash is
/// tolerated, and anything else (other path, query, fragment, port) is a
/// different resource.
pub(crate) fn is_mcp_resource(presented: &str, canonical: &str) -> bool {
    let (Ok(presented), Ok(canonical)) = (Url::parse(presented), Url::parse(canonical)) else {
        return false;
    };
    if presented.fragment().is_some() || presented.query().is_some() {
        return false;
    }
    presented.scheme() == canonical.scheme()
        && presented.host() == canonical.host()
        && presented.port_or_known_default() == canonical.port_or_known_default()
        && presented.path().trim_end_matches('/') == canonical.path().trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const MCP: &str = "https://mcp.example.com/mcp";

    #[test]
    fn the_canonical_resource_and_harmless_spellings_match() {
        for ok in [
            MCP,
            "https://mcp.example.com/mcp/",
            "HTTPS://MCP.EXAMPLE.COM/mcp",
            "https://mcp.example.com:443/mcp",
        ] {
            assert!(is_mcp_resource(ok, MCP), "{ok}");
        }
    }

    #[test]
    fn other_resources_do_not() {
        for bad in [
            "https://mcp.example.com/",
            "https://mcp.example.com",
            "https://mcp.example.com/MCP",
            "https://mcp.example.com/mcp/extra",
            "https://mcp.example.com/mcp?x=1",
            "https://mcp.example.com/mcp#frag",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com:8443/mcp",
            "https://evil.example.com/mcp",
            "https://forgejo.example.com/api/v1",
            "not a url",
        ] {
            assert!(!is_mcp_resource(bad, MCP), "{bad}");
        }
    }
}
