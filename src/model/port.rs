//! Published ports: [`PortMapping`] parsed from `[IP:]HOST:CONTAINER[/proto]` and its protocol.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::PORT_PATTERN;

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
    use super::PortMapping;

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
