//! Published ports: [`PortMapping`] parsed from `[IP:]HOST:CONTAINER[/proto]` and its protocol,
//! and [`Ports`], one entry of `ports:` (a mapping or a range of them).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{PORTS_PATTERN, PORT_PATTERN};

/// Most ports one range may publish: a commit is untrusted input, and each port is a
/// listener (and a proxy process) on the host.
pub const MAX_RANGE: usize = 1024;

/// One entry of `ports:` as written: a mapping (`8080:80`) or a range of them
/// (`8080-8082:8080-8082`, ranges of the same length, port by port), parsed at load into the
/// single mappings the container spec holds. A single mapping renders exactly as before, so
/// specs without ranges keep their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    text: String,
    mappings: Vec<PortMapping>,
}

impl Ports {
    /// The mappings, in port order.
    pub fn mappings(&self) -> &[PortMapping] {
        &self.mappings
    }

    /// Why `text` is not a mapping or a range, as an error message.
    pub fn parse(text: &str) -> Result<Ports, String> {
        static PATTERN: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
        let bad = || format!("`{text}` is not a valid port mapping");
        let caps = PATTERN
            .get_or_init(|| {
                regex::Regex::new(
                    r"^(?:(\[?[0-9a-fA-F:.]+\]?):)?([0-9]{1,5})(?:-([0-9]{1,5}))?:([0-9]{1,5})(?:-([0-9]{1,5}))?(/(?:tcp|udp|sctp))?$",
                )
                .ok()
            })
            .as_ref()
            .and_then(|r| r.captures(text))
            .ok_or_else(bad)?;
        let num = |i: usize| caps.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
        let (h1, c1) = (num(2).ok_or_else(bad)?, num(4).ok_or_else(bad)?);
        let (h2, c2) = (num(3).unwrap_or(h1), num(5).unwrap_or(c1));
        if h2 < h1 || c2 < c1 {
            return Err(format!(
                "`{text}`: a range goes from the lower port to the higher"
            ));
        }
        if h2 - h1 != c2 - c1 {
            return Err(format!(
                "`{text}` maps {} host port(s) to {} container port(s): write ranges of the same length, e.g. 8080-8082:8080-8082",
                h2 - h1 + 1,
                c2 - c1 + 1
            ));
        }
        if (h2 - h1) as usize >= MAX_RANGE {
            return Err(format!(
                "`{text}` publishes {} ports, more than {MAX_RANGE} in one range",
                h2 - h1 + 1
            ));
        }
        let ip = caps
            .get(1)
            .map_or(String::new(), |m| format!("{}:", m.as_str()));
        let proto = caps.get(6).map_or("", |m| m.as_str());
        let mappings = (0..=h2 - h1)
            .map(|i| PortMapping::parse(&format!("{ip}{}:{}{proto}", h1 + i, c1 + i)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        Ok(Ports {
            text: text.to_string(),
            mappings,
        })
    }
}

impl Serialize for Ports {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ports::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Ports {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Ports".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`[IP:]HOST:CONTAINER[/proto]`, or a range `[IP:]H1-H2:C1-C2[/proto]` of the same length.",
            "type": "string",
            "pattern": PORTS_PATTERN,
        })
    }
}

/// A published port, parsed at load from `[IP:]HOST:CONTAINER[/proto]` ([`PORT_PATTERN`], ports
/// from 1 to 65535, a valid IP). Serialized back as `[IP:]HOST:CONTAINER/proto` with the
/// protocol always written and an IPv6 address without its brackets: the form the container
/// spec (and so its hash) has always held.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortMapping {
    /// Empty means all interfaces.
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// The transport of a published port (`tcp` unless written).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl PortMapping {
    /// `None` for anything [`PORT_PATTERN`] and the ranges do not allow.
    pub fn parse(text: &str) -> Option<PortMapping> {
        static PATTERN: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
        let shaped = PATTERN
            .get_or_init(|| regex::Regex::new(PORT_PATTERN).ok())
            .as_ref()
            .is_some_and(|r| r.is_match(text));
        if !shaped {
            return None;
        }
        let (rest, protocol) = match text.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, Protocol::Tcp),
            Some((rest, "udp")) => (rest, Protocol::Udp),
            Some((rest, "sctp")) => (rest, Protocol::Sctp),
            Some(_) => return None,
            None => (text, Protocol::Tcp),
        };
        let (rest, container) = rest.rsplit_once(':')?;
        let (ip, host) = match rest.rsplit_once(':') {
            Some((ip, host)) => (ip.trim_start_matches('[').trim_end_matches(']'), host),
            None => ("", rest),
        };
        let host_port: u16 = host.parse().ok().filter(|p| *p > 0)?;
        let container_port: u16 = container.parse().ok().filter(|p| *p > 0)?;
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            return None;
        }
        Some(PortMapping {
            host_ip: ip.to_string(),
            host_port,
            container_port,
            protocol,
        })
    }

    /// Whether two mappings would fight over the same host socket.
    pub fn clashes_with(&self, other: &PortMapping) -> bool {
        let any = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip == other.host_ip || any(&self.host_ip) || any(&other.host_ip))
    }

    /// The host side, `[IP:]HOST/proto`: what binds on the host.
    pub fn host_side(&self) -> String {
        let ip = if self.host_ip.is_empty() {
            String::new()
        } else {
            format!("{}:", self.host_ip)
        };
        format!("{ip}{}/{}", self.host_port, self.protocol.as_str())
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.host_ip.is_empty() {
            write!(f, "{}:", self.host_ip)?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port,
            self.container_port,
            self.protocol.as_str()
        )
    }
}

impl Serialize for PortMapping {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortMapping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PortMapping::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is not a valid port mapping"))
        })
    }
}

impl JsonSchema for PortMapping {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

#[cfg(test)]
mod port_tests {
    use super::{PortMapping, Ports};

    #[test]
    fn ranges_expand_port_by_port_and_single_mappings_stay_as_they_were() {
        let r = Ports::parse("127.0.0.1:8080-8082:9080-9082/udp").unwrap();
        let texts: Vec<String> = r.mappings().iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "127.0.0.1:8080:9080/udp",
                "127.0.0.1:8081:9081/udp",
                "127.0.0.1:8082:9082/udp"
            ]
        );
        assert_eq!(
            Ports::parse("[::1]:53:53").unwrap().mappings(),
            [PortMapping::parse("[::1]:53:53").unwrap()]
        );
        assert_eq!(Ports::parse("8080:80").unwrap().mappings().len(), 1);
        let e = Ports::parse("8080-8082:80").unwrap_err();
        assert!(
            e.contains("maps 3 host port(s) to 1 container port(s)"),
            "{e}"
        );
        assert!(Ports::parse("8082-8080:8082-8080")
            .unwrap_err()
            .contains("lower port"));
        assert!(Ports::parse("1-2000:1-2000")
            .unwrap_err()
            .contains("more than 1024"));
        assert!(Ports::parse("0-2:0-2").is_err());
        assert!(Ports::parse("65535-65536:1-2").is_err());
        assert!(Ports::parse("80").is_err());
    }

    #[test]
    fn parses_ports_with_and_without_ip() {
        let p = PortMapping::parse("127.0.0.1:8080:80").unwrap();
        assert_eq!(
            (p.host_ip.as_str(), p.host_port, p.container_port),
            ("127.0.0.1", 8080, 80)
        );
        assert_eq!(
            PortMapping::parse("53:53/udp").unwrap().protocol,
            super::Protocol::Udp
        );
        assert!(PortMapping::parse("0:80").is_none());
        assert!(PortMapping::parse("99999:80").is_none());
        assert!(PortMapping::parse("nope:1:2").is_none());
        assert!(
            PortMapping::parse("abc:1:2").is_none(),
            "hex-looking, but no IP"
        );
        assert!(PortMapping::parse("80").is_none());
        assert!(PortMapping::parse("1:2/quic").is_none());
    }

    /// The rendered form is what container specs have always held (their hash depends on it),
    /// and it parses back to the same mapping (a spec-doc label is read back).
    #[test]
    fn renders_the_spec_form_and_reads_it_back() {
        for (written, rendered) in [
            ("8080:80", "8080:80/tcp"),
            ("127.0.0.1:8443:443/tcp", "127.0.0.1:8443:443/tcp"),
            ("[::1]:5353:53/udp", "::1:5353:53/udp"),
            ("0.0.0.0:9000:9000/sctp", "0.0.0.0:9000:9000/sctp"),
        ] {
            let p = PortMapping::parse(written).unwrap();
            assert_eq!(p.to_string(), rendered);
            assert_eq!(PortMapping::parse(rendered), Some(p.clone()));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{rendered}\""));
            assert_eq!(serde_json::from_str::<PortMapping>(&json).unwrap(), p);
        }
        assert_eq!(
            PortMapping::parse("127.0.0.1:8080:80").unwrap().host_side(),
            "127.0.0.1:8080/tcp"
        );
        let err = serde_json::from_str::<PortMapping>("\"0:80\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("`0:80` is not a valid port mapping"),
            "{err}"
        );
    }

    #[test]
    fn wildcard_ip_clashes_with_specific_ip() {
        let a = PortMapping::parse("8080:80").unwrap();
        let b = PortMapping::parse("127.0.0.1:8080:81").unwrap();
        let c = PortMapping::parse("127.0.0.2:8080:81").unwrap();
        assert!(a.clashes_with(&b));
        assert!(!b.clashes_with(&c));
    }
}
