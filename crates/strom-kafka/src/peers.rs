//! How this node reaches other nodes' Kafka listeners (replica fetches, transaction
//! markers): the listener of this front-end's name each node registered, unless
//! `inter.broker.addresses` names another address for that node (a fault-injecting
//! proxy in tests, a NAT or tunnel in deployments).

use std::collections::HashMap;

use strom_broker::api::BrokerEndpoint;

/// Where to connect for each node.
#[derive(Debug, Clone, Default)]
pub struct PeerAddresses {
    listener_name: String,
    overrides: HashMap<i32, (String, u16)>,
}

impl PeerAddresses {
    /// Addresses from the listeners named `listener_name` (`PLAINTEXT`).
    pub fn new(listener_name: impl Into<String>) -> PeerAddresses {
        PeerAddresses {
            listener_name: listener_name.into(),
            overrides: HashMap::new(),
        }
    }

    /// With `inter.broker.addresses`: node id → host and port.
    pub fn with_overrides(mut self, overrides: HashMap<i32, (String, u16)>) -> PeerAddresses {
        self.overrides = overrides;
        self
    }

    /// Parses `inter.broker.addresses`: `id@host:port` separated by commas.
    pub fn parse_overrides(text: &str) -> Result<HashMap<i32, (String, u16)>, String> {
        let mut overrides = HashMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || format!("'{entry}' is not id@host:port");
            let (id, address) = entry.split_once('@').ok_or_else(bad)?;
            let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
            let id: i32 = id.trim().parse().map_err(|_| bad())?;
            let port: u16 = port.trim().parse().map_err(|_| bad())?;
            if host.is_empty() {
                return Err(bad());
            }
            overrides.insert(id, (host.to_string(), port));
        }
        Ok(overrides)
    }

    pub fn listener_name(&self) -> &str {
        &self.listener_name
    }

    /// The host and port to reach `node` at.
    pub fn resolve(&self, node: &BrokerEndpoint) -> Result<(String, u16), String> {
        if let Some(address) = self.overrides.get(&node.node_id) {
            return Ok(address.clone());
        }
        node.listeners
            .iter()
            .find(|l| l.name == self.listener_name)
            .map(|l| (l.host.clone(), l.port))
            .ok_or_else(|| format!("no {} listener registered", self.listener_name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_win_over_listeners() {
        let overrides = PeerAddresses::parse_overrides(" 2@127.0.0.1:9001, 3@proxy:9002 ").unwrap();
        assert_eq!(overrides.len(), 2);
        assert!(PeerAddresses::parse_overrides("2@nohost").is_err());
        assert!(PeerAddresses::parse_overrides("x@h:1").is_err());
        assert!(PeerAddresses::parse_overrides("2@:1").is_err());
        let peers = PeerAddresses::new("PLAINTEXT").with_overrides(overrides);
        let node = |id: i32| BrokerEndpoint {
            node_id: id,
            rack: None,
            listeners: vec![strom_broker::Listener {
                name: "PLAINTEXT".into(),
                host: "10.0.0.1".into(),
                port: 9092,
            }],
            alive: true,
        };
        assert_eq!(peers.resolve(&node(2)).unwrap(), ("127.0.0.1".to_string(), 9001));
        assert_eq!(peers.resolve(&node(4)).unwrap(), ("10.0.0.1".to_string(), 9092));
        let other = PeerAddresses::new("INTERNAL");
        assert!(other.resolve(&node(4)).unwrap_err().contains("no INTERNAL listener"));
    }
}
