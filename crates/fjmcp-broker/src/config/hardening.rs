//! Value types and parsers of the hardening settings (issue 12): request
//! rates, trusted proxies, the Unix user children run as, and where their
//! private directories go. Pure, except that a user name is looked up in
//! `/etc/passwd`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A request rate: at most `count` requests per `per`, with bursts of up to
/// `count` (a token bucket holding `count` tokens, refilled evenly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// `120/min`, `10/s`, `1000/h` (also `sec`, `second`, `m`, `minute`, `hour`),
/// or `off` for no limit (`None`).
pub(crate) fn parse_rate(text: &str) -> Result<Option<Rate>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let wrong = || format!("`{text}` is not a rate like 120/min, 10/s or off");
    let (count, unit) = text.split_once('/').ok_or_else(wrong)?;
    let count: u32 = count.trim().parse().map_err(|_| wrong())?;
    if count == 0 {
        return Err(format!(
            "`{text}`: the count must be above zero (or write off)"
        ));
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(wrong()),
    };
    Ok(Some(Rate { count, per }))
}

/// An IP network: an address and how many leading bits of it matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, how a dual-stack socket reports IPv4 peers) counts
    /// as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = prefix % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// `127.0.0.1,::1,10.0.0.0/8`: addresses or networks; `none` for an empty list.
pub(crate) fn parse_trusted_proxies(text: &str) -> Result<Vec<IpNet>, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (addr, prefix) = match item.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (item, None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("`{item}` is not an IP address or network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("`{item}`: the prefix length must be 0 to {max}"))?,
            };
            Ok(IpNet { addr, prefix })
        })
        .collect()
}

/// A Unix user and group to run children as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixUser {
    pub uid: u32,
    pub gid: u32,
}

/// `UID:GID`, a bare `UID` (the group id is the same number), or a user name
/// looked up in `passwd` (the text of `/etc/passwd`; its primary group).
/// Root is refused: the point is to run children as someone less powerful.
pub(crate) fn parse_child_user(text: &str, passwd: Option<&str>) -> Result<UnixUser, String> {
    let text = text.trim();
    let numeric = |s: &str| s.trim().parse::<u32>().ok();
    let user = if let Some((uid, gid)) = text.split_once(':') {
        match (numeric(uid), numeric(gid)) {
            (Some(uid), Some(gid)) => UnixUser { uid, gid },
            _ => return Err(format!("`{text}` is not UID:GID")),
        }
    } else if let Some(uid) = numeric(text) {
        UnixUser { uid, gid: uid }
    } else {
        let passwd = passwd.ok_or_else(|| format!("cannot look up the user `{text}`"))?;
        passwd
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() >= 4 && fields[0] == text).then(|| (fields[2], fields[3]))
            })
            .find_map(|(uid, gid)| {
                Some(UnixUser {
                    uid: numeric(uid)?,
                    gid: numeric(gid)?,
                })
            })
            .ok_or_else(|| format!("no user `{text}` in /etc/passwd (or give UID:GID)"))?
    };
    if user.uid == 0 || user.gid == 0 {
        return Err(format!(
            "`{text}`: children must not run as root or the root group"
        ));
    }
    Ok(user)
}

/// The directory the broker makes its private children's directory in: the
/// setting if given, else systemd's `$RUNTIME_DIRECTORY` (its first entry),
/// else `$TMPDIR`, else `/tmp`.
pub(crate) fn work_parent(
    setting: Option<PathBuf>,
    runtime_directory: Option<String>,
    tmpdir: Option<String>,
) -> PathBuf {
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    setting
        .or_else(|| {
            non_empty(runtime_directory).and_then(|dirs| dirs.split(':').next().map(PathBuf::from))
        })
        .or_else(|| non_empty(tmpdir).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// The name of the private directory below [`work_parent`]: random, so it
/// cannot be guessed and prepared by someone else (`mkdtemp` semantics; the
/// broker creates it exclusively at start).
pub(crate) fn work_root_in(parent: &Path) -> PathBuf {
    parent.join(format!("fjmcp-broker-{}", crate::crypto::random_id()))
}

/// A Forgejo URL is acceptable without TLS only on a loopback host, unless
/// the operator said so explicitly.
pub(crate) fn check_forgejo_scheme(url: &str, allow_http: bool) -> Result<(), String> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(()); // reported by the URL's own parser
    };
    let loopback = parsed
        .host()
        .is_some_and(|host| super::is_loopback_host(&host));
    if parsed.scheme() == "http" && !loopback && !allow_http {
        return Err(format!(
            "`{url}` is plain http to another machine: the broker would send Forgejo \
             tokens and its client secret unencrypted. Use https, or set \
             forgejo_allow_http = true if the network in between is trusted"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(
            parse_rate("120/min").unwrap(),
            Some(Rate {
                count: 120,
                per: Duration::from_secs(60)
            })
        );
        assert_eq!(
            parse_rate(" 10/s ").unwrap().unwrap().per,
            Duration::from_secs(1)
        );
        assert_eq!(
            parse_rate("5/hour").unwrap().unwrap().per,
            Duration::from_secs(3600)
        );
        assert_eq!(parse_rate("off").unwrap(), None);
        for bad in ["", "120", "0/min", "x/min", "10/day", "-1/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn networks() {
        let nets = parse_trusted_proxies("127.0.0.1, ::1,10.0.0.0/8,2001:db8::/32").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let any = |s: &str| nets.iter().any(|n| n.contains(ip(s)));
        assert!(any("127.0.0.1"));
        assert!(!any("127.0.0.2"));
        assert!(any("::1"));
        assert!(any("::ffff:127.0.0.1"), "IPv4-mapped peers count as IPv4");
        assert!(any("10.200.3.4"));
        assert!(!any("11.0.0.1"));
        assert!(any("2001:db8:ffff::1"));
        assert!(!any("2001:db9::1"));
        let odd = parse_trusted_proxies("192.168.0.0/23").unwrap();
        assert!(odd[0].contains(ip("192.168.1.255")));
        assert!(!odd[0].contains(ip("192.168.2.0")));
        assert!(parse_trusted_proxies("none").unwrap().is_empty());
        assert!(parse_trusted_proxies("").unwrap().is_empty());
        for bad in ["localhost", "10.0.0.0/33", "::/129", "1.2.3.4/x"] {
            assert!(parse_trusted_proxies(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn child_users() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nfjmcp-child:x:990:985::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            parse_child_user("fjmcp-child", Some(passwd)).unwrap(),
            UnixUser { uid: 990, gid: 985 }
        );
        assert_eq!(
            parse_child_user("1000:100", None).unwrap(),
            UnixUser {
                uid: 1000,
                gid: 100
            }
        );
        assert_eq!(
            parse_child_user("65534", None).unwrap(),
            UnixUser {
                uid: 65534,
                gid: 65534
            }
        );
        for bad in ["root", "0", "0:100", "100:0", "nobody-here", "1:x"] {
            assert!(parse_child_user(bad, Some(passwd)).is_err(), "{bad}");
        }
    }

    #[test]
    fn work_directories() {
        let explicit = work_parent(Some("/srv/x".into()), Some("/run/a".into()), None);
        assert_eq!(explicit, PathBuf::from("/srv/x"));
        let runtime = work_parent(None, Some("/run/a:/run/b".into()), Some("/t".into()));
        assert_eq!(runtime, PathBuf::from("/run/a"));
        assert_eq!(
            work_parent(None, Some(String::new()), Some("/t".into())),
            PathBuf::from("/t")
        );
        assert_eq!(work_parent(None, None, None), PathBuf::from("/tmp"));
        let a = work_root_in(Path::new("/tmp"));
        let b = work_root_in(Path::new("/tmp"));
        assert_ne!(a, b, "the name is random");
        assert!(
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("fjmcp-broker-")
        );
    }

    #[test]
    fn forgejo_over_plain_http_only_on_loopback_or_when_allowed() {
        assert!(check_forgejo_scheme("https://forgejo.example.com", false).is_ok());
        assert!(check_forgejo_scheme("http://127.0.0.1:3000", false).is_ok());
        assert!(check_forgejo_scheme("http://localhost:3000", false).is_ok());
        let refused = check_forgejo_scheme("http://forgejo:3000", false).unwrap_err();
        assert!(refused.contains("forgejo_allow_http"), "{refused}");
        assert!(check_forgejo_scheme("http://forgejo:3000", true).is_ok());
    }
}
